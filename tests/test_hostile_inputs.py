"""Hostile motion files cost only themselves: one error line naming the file, no traceback, no hang,
no runaway memory, and every good file still imported (corpus: tests/hostile_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from motionclip.core.cli import main
from motionclip.core.data import importer
from motionclip.core.errors import MotionClipError
from motionclip.core.io import load_source_motion
from motionclip.core.io import limits as L
from motionclip.core.io.amass import read_amass
from motionclip.core.io.bvh import read_bvh
from motionclip.core.io.retarget import RetargetError
from motionclip.core.motion import Motion

from hostile_files import good_motion, import_footprint, make_corpus, run_limited

# Files that read fine but fail in the importer (too short for a training window).
IMPORT_ONLY = {"short.bvh"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def limit() -> int:
    """What importing torch maps (about 3 GB of address space for a CUDA build), plus 1 GiB for the work:
    a reader that decompressed one of the 1 GB bombs, or allocated what a lying header declares, would
    fail with MemoryError instead of being refused by a limit."""
    return import_footprint() + (1 << 30)


def bad_by_name(corpus, name: str) -> Path:
    return next(p for p in corpus.bad if p.name == name)


def refused(corpus, name: str, read, error: type[Exception], match: str) -> None:
    """`read` refuses the corpus's bad file `name` with `error`, its message matching `match`."""
    with pytest.raises(error, match=match):
        read(bad_by_name(corpus, name))


def strict_json(path: Path):
    def refuse(c):
        raise AssertionError(f"{path} holds {c}")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_import_keeps_every_good_file_and_names_every_bad_one(corpus, limit, tmp_path) -> None:
    out = tmp_path / "ds"
    proc = run_limited(["data", "import", *map(str, corpus.good + corpus.bad), "--out", str(out),
                        "--texts", str(corpus.texts), "--quiet"], limit, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    for bad in corpus.bad:
        named = [ln for ln in lines if ln.strip().startswith(f"{bad}: ")]
        assert len(named) == 1, (bad.name, named)
    assert f"{len(corpus.bad)} file(s) failed" in proc.stderr
    errors = strict_json(out / "import_errors.json")
    assert sorted(e["file"] for e in errors) == sorted(map(str, corpus.bad))
    assert all(e["error"] and "\n" not in e["error"] for e in errors)
    index = strict_json(out / "index.json")  # no NaN / Infinity anywhere
    assert sorted(c["source"] for c in index["clips"]) == sorted(map(str, corpus.good))
    assert f"imported {len(corpus.good)} clip(s)" in proc.stdout


CONVERT_ALL = """
import contextlib, io, json, sys
from motionclip.core.cli import main
files, out = json.loads(sys.argv[1]), sys.argv[2]
results = []
for i, f in enumerate(files):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["convert", f, f"{out}/{i}.motion", "--fps", "30"])
    results.append([f, rc, err.getvalue()])
print(json.dumps(results))
"""


def test_convert_refuses_each_bad_file_in_one_line(corpus, limit, tmp_path) -> None:
    files = [str(p) for p in corpus.good + corpus.bad]
    proc = run_limited(["-c", CONVERT_ALL, json.dumps(files), str(tmp_path)], limit, timeout=300, module="")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {f: (rc, err) for f, rc, err in json.loads(proc.stdout)}
    for i, good in enumerate(corpus.good):
        assert results[str(good)] == (0, ""), results[str(good)]
        assert Motion.load(tmp_path / f"{i}.motion").fps == 30.0
    for bad in corpus.bad:
        rc, err = results[str(bad)]
        if bad.name in IMPORT_ONLY:
            assert rc == 0
            continue
        assert rc == 1 and "Traceback" not in err, (bad.name, err)
        assert err.count("\n") == 1 and err.startswith(f"error: {bad}: "), (bad.name, err)


def test_render_and_recognize_refuse_each_bad_file_before_any_work(corpus, tmp_path, capsys) -> None:
    for bad in corpus.bad:
        if bad.name in IMPORT_ONLY:
            continue
        for argv in (["render", str(bad), "--out", str(tmp_path / "a.png"), "--body", "skeleton", "--quiet"],
                     ["recognize", str(bad), "--labels", "walk,run", "--checkpoint", str(tmp_path / "no-model")]):
            assert main(argv) == 1, (argv, bad.name)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err, (argv[0], err)
            assert not (tmp_path / "a.png").exists()


def test_every_reader_error_starts_with_the_file(corpus) -> None:
    for bad in corpus.bad:
        if bad.name in IMPORT_ONLY:
            continue
        with pytest.raises(MotionClipError) as e:
            load_source_motion(bad)
        assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value), str(e.value)


# --- the worst cases, reader by reader --------------------------------------------------------------------

def test_bvh_channel_counts_are_bounded(corpus) -> None:
    refused(corpus, "channels_minus2.bvh", read_bvh, MotionClipError, r"CHANNELS -2; a joint has 0 to 6 channels")
    refused(corpus, "channels_huge.bvh", read_bvh, MotionClipError, r"CHANNELS 999999999999")
    refused(corpus, "deep_hierarchy.bvh", read_bvh, L.LimitError,
            r"number of joints is 513; the limit is 512 \(MAX_JOINTS")
    refused(corpus, "frames_billion.bvh", read_bvh, L.LimitError,
            r"Frames: line\) is 1,000,000,000,000; the limit is 200,000")


def test_bvh_frame_times_outside_the_fps_range_are_refused(corpus) -> None:
    refused(corpus, "tiny_frame_time.bvh", read_bvh, L.LimitError, r"is inf fps; readable files have 1 to 1000 fps")
    refused(corpus, "slow_frame_time.bvh", read_bvh, L.LimitError, r"is 1e-06 fps")


def test_a_skeleton_of_zero_offsets_is_refused(corpus) -> None:
    refused(corpus, "zero_offsets.bvh", load_source_motion, RetargetError, "rest offsets are zero")
    # Offsets and values beyond float32's range would become infinite: refused as read.
    refused(corpus, "huge_offset.bvh", read_bvh, L.LimitError,
            r"line 94: OFFSET 1e39 is beyond \+-1e\+09 \(MAX_ABS_VALUE")
    refused(corpus, "big_value.bvh", read_bvh, L.LimitError, r"line 148: value 4 is 1e\+30, beyond \+-1e\+09")
    refused(corpus, "values_many.bvh", read_bvh, L.LimitError, r"frames x channels \(199,999 x 360\) is 71,999,640")


def test_npz_bombs_and_lying_headers_are_refused_before_reading(corpus) -> None:
    refused(corpus, "bomb.npz", read_amass, L.LimitError,
            r"'poses.npy' \(decompressed\) is 1,073,741,888 bytes.*MAX_ZIP_ENTRY_BYTES")
    refused(corpus, "bomb_values.npz", read_amass, L.LimitError,
            r"\[199000, 300\] is 59,700,000 values; the limit is 50,000,000")
    refused(corpus, "header_lie_member.npz", read_amass, MotionClipError,
            r"declares \[150000, 72\] float64 \(86,400,000 bytes\) but its member holds")
    refused(corpus, "npy_short.npz", read_amass, MotionClipError,
            r"holds 22,976 bytes of data .* the file is truncated")
    # 200,000 frames (the limit) of zeros in 117 KB: refused for its compression ratio before it is read.
    refused(corpus, "bomb_in_limits.npz", read_amass, L.LimitError,
            r"member 'poses.npy' expands 1,0\d\d times \([\d,]+ to 115,200,128 bytes\); "
            r"the limit is 100 times \(MAX_COMPRESSION_RATIO")
    refused(corpus, "many_members.npz", read_amass, L.LimitError, r"archive members is 5000; the limit is 64")


@pytest.mark.parametrize("name, message", [
    ("poses_object.npz", r"holds object values; expected numbers"),
    ("fps_text.npz", r"holds <U6 values"),
    ("fps_1e-6.npz", r"'mocap_framerate' is 1e-06 fps"),
    ("fps_empty.npz", r"must be one number"),
    ("npy_version.npz", r"\.npy format version \(7, 0\)"),
    ("poses_6d.npz", r"has 6 dimensions"),
    ("betas_huge.npz", r"'betas' must be at most 300"),
    ("frames_many.npz", r"number of frames in 'poses.npy' \[200001, 72\] is 200,001; the limit is 200,000"),
    ("split_layout_mismatch.npz", r"'root_orient' \[40, 3\] and 'pose_body' \[41, 63\] must both be"),
])
def test_npz_contents_are_checked(corpus, name, message) -> None:
    refused(corpus, name, read_amass, MotionClipError, message)


@pytest.mark.parametrize("name, message", [
    ("bomb.motion", r"MAX_ZIP_ENTRY_BYTES"),
    ("header_lie.motion", r"frames in 'quats.npy' \[1000000000, 24, 4\] is 1,000,000,000; the limit is 200,000"),
    ("header_list.motion", r"the header is a JSON list"),
    ("header_string.motion", r"the header is a JSON string"),
    ("version_text.motion", r"'version' must be a number, got 'one'"),
    ("no_header.motion", r"no header.json"),
    ("header_crc.motion", r"member 'header.json' cannot be read \(Bad CRC-32"),
    ("header_nested.motion", r"'fps' must be a number of frames per second"),
    ("header_no_fps.motion", r"the header has no 'fps'"),
    ("string_meta.motion", r"'meta' must be a JSON object, got str"),
    ("header_deep.motion", r"nesting depth is over 1000; the limit is 32"),
    ("header_binary.motion", r"not UTF-8 text"),
    ("header_big.motion", r"member 'header.json' is 2,097,2\d\d bytes; the limit is 1,048,576 bytes"),
    ("huge_int.motion", r"is inf fps"),
    ("fps_1e-6.motion", r"is 1e-06 fps"),
    ("version_99.motion", r"newer version"),
    ("crc_bad.motion", r"Bad CRC-32"),
])
def test_motion_files_are_checked(corpus, name, message) -> None:
    refused(corpus, name, Motion.load, MotionClipError, message)


def test_json_limits(corpus) -> None:
    refused(corpus, "deep.json", load_source_motion, L.LimitError, r"nesting depth is over 1000; the limit is 32")
    refused(corpus, "nan.json", load_source_motion, MotionClipError, r"NaN is not a number JSON allows")
    with pytest.raises(L.LimitError, match=r"'fps' is inf fps"):  # 5,000 digits: no int-conversion error
        load_source_motion(bad_by_name(corpus, "digits_5000.json"))
    refused(corpus, "string_meta.json", load_source_motion, MotionClipError, r"'meta' must be a JSON object")
    refused(corpus, "deepmimic_gap.txt", load_source_motion, MotionClipError,
            r"over 1e\+09 s is 30,000,000,019; the limit is 200,000")
    refused(corpus, "deepmimic_negative_dt.txt", load_source_motion, MotionClipError,
            r"Frames\[5\] has a negative duration")
    refused(corpus, "frames_many.json", load_source_motion, L.LimitError, r"number of frames in 'rotations' is 200,001")
    assert L.json_depth(json.loads('{"a": "[[[[", "b": [[1]]}')) == 3  # brackets inside strings do not count
    with pytest.raises(L.LimitError, match=r"nesting depth is 33; the limit is 32"):
        L.loads_json(b"[" * 33 + b"]" * 33, "deep33.json")
    with pytest.raises(MotionClipError, match=r"line 1: invalid JSON"):  # an unclosed string: no slow scan
        L.loads_json(b'"' + b'a\\"' * 200_000, "quotes.json")
    with pytest.raises(L.LimitError, match=r"JSON size is 67,108,865 bytes"):
        L.loads_json(b" " * (L.MAX_JSON_BYTES + 1), "big.json")


def test_motions_sent_to_the_server_meet_the_same_limits() -> None:
    from motionclip.core.io.json_motion import data_to_motion
    from motionclip.core.protocol import MotionData

    still = [[[1.0, 0.0, 0.0, 0.0]] * 24] * 2
    with pytest.raises(L.LimitError, match=r"^motion: 'fps' is 1e-06 fps; readable files have 1 to 1000 fps"):
        data_to_motion(MotionData(fps=1e-6, rotations=still, trans=[[0.0] * 3] * 2), "motion")
    assert data_to_motion(MotionData(fps=30.0, rotations=still, trans=[[0.0] * 3] * 2), "motion").num_frames == 2


def test_resampling_to_too_many_frames_is_refused() -> None:
    slow = Motion.rest(3, fps=1e-6)  # built in code: readers refuse such a frame rate
    with pytest.raises(L.LimitError, match=r"resampling 3 frames at 1e-06 fps to 30 fps: the number of frames is "
                                           r"60,000,001; the limit is 200,000"):
        slow.resample(30)
    assert good_motion(frames=40).resample(60).num_frames == 79


def test_files_larger_than_the_limit_are_not_read(tmp_path, monkeypatch) -> None:
    p = tmp_path / "long.bvh"
    p.write_text("HIERARCHY\n" + " " * 2000)
    monkeypatch.setattr(L, "MAX_FILE_BYTES", 1000)
    with pytest.raises(L.LimitError, match=r"the file size is 2,010 bytes; the limit is 1,000 bytes"):
        read_bvh(p)


@pytest.mark.parametrize("exc, message", [
    (MemoryError(), "reading it needs more memory than this machine can give"),
    (RecursionError(), "nested too deeply"),
    (KeyError("poses"), "not a readable bvh file (KeyError: 'poses')"),
    (OSError(5, "Input/output error"), "cannot read the file (Input/output error)"),
    (FileNotFoundError(2, "gone"), "no such file"),
])
def test_whatever_a_reader_raises_becomes_one_line_naming_the_file(corpus, monkeypatch, exc, message) -> None:
    import motionclip.core.io.bvh as bvh

    def broken(*a, **k):
        raise exc
    monkeypatch.setattr(bvh, "read_bvh", broken)
    good = corpus.good[0]
    with pytest.raises(MotionClipError) as e:
        load_source_motion(good)
    assert str(e.value).startswith(f"{good}: {message}") and "\n" not in str(e.value), str(e.value)


def test_import_survives_failures_outside_the_readers(corpus, tmp_path, monkeypatch, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    walk = src / "walk.bvh"
    walk.write_bytes(corpus.good[0].read_bytes())
    (src / "walk.txt").write_bytes(b"\xff\xfe binary sidecar")  # labels that are not text
    out = tmp_path / "ds"
    assert main(["data", "import", str(walk), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{walk}: cannot be imported (UnicodeDecodeError" in err and "Traceback" not in err
    # A dataset folder that cannot take the clip: the file fails, the error names what could not be written.
    (src / "walk.txt").write_text("a person walks\n")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "clips").write_text("a file where the clips folder goes")
    assert main(["data", "import", str(walk), "--out", str(blocked), "--quiet"]) == 1
    assert f"{walk}: cannot read or write {blocked / 'clips'}" in capsys.readouterr().err
    # The error report itself cannot be written: one line naming it.
    (out / "import_errors.json").unlink()
    (out / "import_errors.json").mkdir()
    assert main(["data", "import", str(corpus.bad[0]), "--out", str(out), "--quiet"]) == 1
    assert f"error: {out / 'import_errors.json'}: cannot write" in capsys.readouterr().err
    monkeypatch.setattr(importer, "load_source_motion", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    result = importer.import_files([walk], tmp_path / "ds2")
    assert result.failed == [(str(walk), "reading it needs more memory than this machine can give")]


def test_convert_names_the_output_when_the_disk_is_full(corpus, tmp_path, monkeypatch, capsys) -> None:
    import motionclip.core.motion as motion_module

    def full(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(motion_module, "atomic_write_bytes", full)
    out = tmp_path / "out.motion"
    assert main(["convert", str(corpus.good[0]), str(out)]) == 1
    assert capsys.readouterr().err == f"error: {out}: cannot write (No space left on device)\n"


def test_nothing_non_finite_reaches_the_index(corpus, tmp_path, monkeypatch) -> None:
    motion, report = load_source_motion(corpus.good[0])
    report.facing_err_deg = float("nan")  # as a degenerate skeleton could measure
    monkeypatch.setattr(importer, "load_source_motion", lambda *a, **k: (motion, report))
    result = importer.import_files([corpus.good[0]], tmp_path / "ds", texts_file=corpus.texts)
    [(file, reason)] = result.failed
    assert file == str(corpus.good[0]) and reason.startswith("its measurements or metadata are not plain finite JSON "
                                                             "values (Out of range float values"), reason
    assert not (tmp_path / "ds" / "index.json").exists()


def test_limits_are_documented_in_one_place() -> None:
    for name in L.LIMIT_NAMES:
        assert isinstance(getattr(L, name), (int, float)), name
    assert L.check_fps("f", 30) == 30.0
    with pytest.raises(L.LimitError, match=r"f: the frame rate must be a number of frames per second, got 'x'"):
        L.check_fps("f", "x")
