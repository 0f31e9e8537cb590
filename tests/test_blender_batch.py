"""`motionclip blender-batch` (core/blender_batch.py driving blender_addon/batch.py) with real Blender.

Fast suite: every error branch that stops a batch before any prompt runs (no Blender, a Blender
that cannot start, an unknown format, a missing prompt or scene file, an unwritable output
folder, a bad prompt file, no backend, a server that does not start), through the CLI and, in
one bpy 5 process, through the batch script itself.

Slow suite (a tiny trained model served by `motionclip serve`): each format written with a
relative --out, then reopened in the same Blender as a user would (tests/blender_scripts/
check_batch_outputs.py): the .blend holds the camera, floor, light, armature and body the MP4
shows, its frame range and render output; the FBX, imported with Blender's default settings, has
its keys on frames 1..N and the same bone positions as the .blend on those frames; the BVH the
same, imported with Forward Y, Up Z as the README says (bpy 5; Debian's 3.4 BVH importer is
broken on Python 3.11). Bad prompts fail alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from motionclip.core import headless_blender
from motionclip.core.cli import main
from test_blender_addon import BLENDER_PYTHON, DEBIAN_BLENDER, REPO, dead_url, server  # noqa: F401

CHECK = REPO / "tests" / "blender_scripts" / "check_batch_outputs.py"
BATCH = REPO / "blender_addon" / "batch.py"
MOTIONCLIP = Path(sys.executable).parent / "motionclip"


def clean_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"))
    return env


def prompts_file(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.txt"
    p.write_text("a person walks\n")
    return p


# ---------------------------------------------------------------- fast: the CLI's own error branches

def test_finder_takes_a_blender_or_a_bpy_python(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(headless_blender.BLENDER_ENV, raising=False)
    py = tmp_path / "python3.11"
    py.write_text("")
    found = headless_blender.find_blender(str(py))
    assert found.is_python and found.command("s.py") == [str(py), "s.py", "--"]
    exe = tmp_path / "blender"
    exe.write_text("")
    monkeypatch.setenv(headless_blender.BLENDER_ENV, str(exe))
    found = headless_blender.find_blender()
    assert not found.is_python and found.where.endswith(f"(from ${headless_blender.BLENDER_ENV})")
    assert found.command("s.py", factory_startup=True)[:3] == [str(exe), "-b", "--factory-startup"]
    monkeypatch.delenv(headless_blender.BLENDER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(headless_blender.BlenderNotFound, match="no Blender found: install Blender"):
        headless_blender.find_blender(bpy_env=False)


def test_cli_errors_exit_2_with_the_reason(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.delenv(headless_blender.BLENDER_ENV, raising=False)
    prompts = prompts_file(tmp_path)
    fake = tmp_path / "blender"  # a file that is no program: it cannot start
    fake.write_text("not a program")
    fake.chmod(0o644)
    base = ["blender-batch", "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--server", dead_url()]
    cases = [
        (["--blender", str(tmp_path / "nowhere")], f"Blender not found at {tmp_path / 'nowhere'} (from --blender)"),
        (["--blender", str(fake)], f"could not start Blender {fake} (from --blender)"),
        (["--blender", str(fake), "--script", str(tmp_path / "batch.py")], "the add-on's batch script is missing"),
        (["--blender", str(fake), "--scene", str(tmp_path / "no.blend")], f"{tmp_path / 'no.blend'}: no such .blend"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        assert message in capfd.readouterr().err, extra
    assert main(["blender-batch", "--blender", str(fake), "--prompts", str(tmp_path / "none.txt"), "--out",
                 str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'none.txt'}: no such prompt file" in capfd.readouterr().err
    assert main(base + ["--blender", sys.executable]) == 2  # a Python without bpy: the script says so
    assert f"error: {sys.executable} has no bpy module" in capfd.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(base) == 2
    assert "no Blender found: install Blender" in capfd.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(base + ["--format", "gif"])
    assert exc.value.code == 2 and "invalid choice: 'gif'" in capfd.readouterr().err


def test_a_server_that_does_not_start_is_reported(tmp_path, capsys) -> None:
    fake = tmp_path / "blender"
    fake.write_text("")
    assert main(["blender-batch", "--blender", str(fake), "--prompts", str(prompts_file(tmp_path)), "--out",
                 str(tmp_path / "out"), "--checkpoint", str(tmp_path / "no_run")]) == 2
    assert "error: the server did not start" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- fast: the batch script's own error branches

def test_batch_script_errors_exit_2_with_the_reason(tmp_path) -> None:
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    good = prompts_file(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    files = {"bad.json": "[1, ", "dict.json": '{"prompt": "x"}', "empty.txt": "# only a comment\n\n",
             "latin1.txt": b"caf\xe9\n"}
    for name, text in files.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    out = str(tmp_path / "out")
    cases = [  # (argv, exit code, message on stderr)
        (["--prompts", str(good), "--out", out, "--format", "gif"], 2, "invalid choice: 'gif'"),
        (["--prompts", str(good), "--out", out, "--resolution", "big"], 2, "--resolution 'big': give WIDTHxHEIGHT"),
        (["--prompts", str(tmp_path / "none.txt"), "--out", out], 2, "none.txt: cannot read the prompt file"),
        (["--prompts", str(tmp_path / "latin1.txt"), "--out", out], 2, "latin1.txt: cannot read the prompt file"),
        (["--prompts", str(tmp_path / "bad.json"), "--out", out], 2, "bad.json: not valid JSON"),
        (["--prompts", str(tmp_path / "dict.json"), "--out", out], 2, "dict.json: must hold a JSON list"),
        (["--prompts", str(tmp_path / "empty.txt"), "--out", out], 2, "empty.txt: no prompts in it"),
        (["--prompts", str(good), "--out", str(blocker / "out")], 2, "cannot create the output folder"),
        (["--prompts", str(good), "--out", out, "--server", dead_url()], 2, "error: cannot reach the backend"),
    ]
    script = (
        "import contextlib, importlib.util, io, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('batch_script', {str(BATCH)!r})\n"
        "batch = importlib.util.module_from_spec(spec); spec.loader.exec_module(batch)\n"
        f"cases = json.loads({json.dumps(json.dumps([c[0] for c in cases]))})\n"
        "results = []\n"
        "for argv in cases:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        code = batch.main(argv)\n"
        "    results.append([code, err.getvalue()])\n"
        f"open({str(tmp_path / 'results.json')!r}, 'w').write(json.dumps(results))\n")
    proc = subprocess.run([str(BLENDER_PYTHON), "-c", script], env=clean_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for (argv, code, message), (got_code, err) in zip(cases, results):
        assert got_code == code and message in err, (argv, got_code, err)
    assert not any((tmp_path / "out").rglob("*"))  # nothing ran, nothing written


# ---------------------------------------------------------------- slow: every format, reopened in Blender

BLENDERS = {"blender-3.4": DEBIAN_BLENDER, "bpy-5": str(BLENDER_PYTHON) if BLENDER_PYTHON.exists() else None}
PROMPTS = [{"prompt": "a person walks forward", "frames": 24}, {"prompt": "a person jumps", "frames": 36}]


def run_batch(blender: str, server_url: str, cwd: Path, fmt: str, prompts: Path, *extra: str):
    return subprocess.run([str(MOTIONCLIP), "blender-batch", "--blender", blender, "--prompts", prompts.name,
                           "--out", f"out/{fmt}", "--format", fmt, "--server", server_url, "--fps", "24",
                           "--resolution", "160x120", *extra], cwd=cwd, env=clean_env(cwd), capture_output=True,
                          text=True, timeout=900)


def reopen(blender: str, files: list[Path], tmp_path: Path) -> dict:
    """What Blender sees in each file (check_batch_outputs.py run in the given Blender)."""
    out = tmp_path / "seen.json"
    cmd = ([blender, str(CHECK), "--"] if headless_blender.is_python(blender) else
           [blender, "-b", "--factory-startup", "--python-exit-code", "3", "--python", str(CHECK), "--"])
    proc = subprocess.run(cmd + [str(out)] + [str(f) for f in files], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())["files"]


@pytest.fixture(params=list(BLENDERS))
def installed_blender(request) -> tuple[str, str]:
    """(name, executable) of each Blender in BLENDERS; skips one that is not installed here."""
    if BLENDERS[request.param] is None:
        pytest.skip(f"{request.param} is not installed here")
    return request.param, BLENDERS[request.param]


@pytest.mark.slow
def test_every_format_reopens_as_the_batch_promised(installed_blender, server, tmp_path) -> None:  # noqa: F811
    name, blender = installed_blender
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))
    formats = ("blend", "fbx") + (("bvh",) if name == "bpy-5" else ())
    written: dict[str, list[Path]] = {}
    for fmt in formats:  # a relative --out, resolved against the caller's directory
        proc = run_batch(blender, server, tmp_path, fmt, tmp_path / "prompts.json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        report = json.loads((tmp_path / "out" / fmt / "batch_report.json").read_text())
        written[fmt] = [Path(it["file"]) for it in report["items"]]
        assert [p.name for p in written[fmt]] == [f"001_a_person_walks_forward.{fmt}", f"002_a_person_jumps.{fmt}"]
        assert all(p.is_file() and p.parent == tmp_path / "out" / fmt for p in written[fmt])
    seen = reopen(blender, [p for fmt in formats for p in written[fmt]], tmp_path)
    for i, job in enumerate(PROMPTS):
        n = job["frames"]
        blend = seen[str(written["blend"][i])]
        kinds = [t for t, _ in blend["objects"]]
        assert blend["camera"] == "motionclip camera" and "LIGHT" in kinds, blend["objects"]
        assert ["MESH", "motionclip floor"] in blend["objects"] and blend["body_meshes"] == ["SMPL_body"]
        assert blend["armatures"] == 1 and blend["frame_range"] == [1, n] and blend["fps"] == 24
        assert blend["resolution"] == [160, 120] and blend["engine"] == "BLENDER_WORKBENCH" and blend["ffmpeg"]
        assert blend["render_output"] == str(written["blend"][i].with_suffix(".mp4"))
        for fmt in formats:
            d = seen[str(written[fmt][i])]
            assert len(d["bones"]) == 24 and {"Pelvis", "L_Wrist", "Head"} <= set(d["bones"]), (fmt, d["bones"])
            keys = d["keys"]
            assert (keys["first"], keys["last"], keys["frames"]) == (1, n, n), (fmt, keys)
            assert keys["per_curve"] == [n], (fmt, keys)  # every frame keyed on every curve
            for when in ("heads_first", "heads_last"):  # the same pose on the same frame as the .blend
                for bone in ("Pelvis", "L_Wrist", "R_Ankle", "Head"):
                    a, b = np.array(d[when][bone]), np.array(blend[when][bone])
                    assert np.allclose(a, b, atol=1e-3), (fmt, when, bone, a, b)


@pytest.mark.slow
def test_a_scene_file_is_kept_and_its_armature_animated(installed_blender, server, tmp_path) -> None:  # noqa: F811
    _, blender = installed_blender
    (tmp_path / "first.json").write_text(json.dumps(PROMPTS[:1]))
    proc = run_batch(blender, server, tmp_path, "blend", tmp_path / "first.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    scene = Path("out/blend/001_a_person_walks_forward.blend")  # relative, as a user types it
    (tmp_path / "second.json").write_text(json.dumps([{"prompt": "a person waves", "frames": 20}]))
    proc = subprocess.run([str(MOTIONCLIP), "blender-batch", "--blender", blender, "--prompts", "second.json",
                           "--out", "again", "--format", "blend", "--scene", str(scene), "--server", server],
                          cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    again = tmp_path / "again" / "001_a_person_waves.blend"
    d = reopen(blender, [again], tmp_path)[str(again)]
    assert d["armatures"] == 1 and d["body_meshes"] == ["SMPL_body"]  # the scene's armature, not a second one
    assert d["camera"] == "motionclip camera" and sum(t == "LIGHT" for t, _ in d["objects"]) == 1
    assert d["frame_range"] == [1, 20] and (d["keys"]["first"], d["keys"]["last"]) == (1, 20)
    assert d["fps"] == 24  # no --fps: the scene file's frame rate


@pytest.mark.slow
def test_bad_prompts_fail_alone_and_the_rest_is_written(server, tmp_path) -> None:  # noqa: F811
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    items = [{"prompt": "a person waves", "frames": 12}, {"prompt": ""}, {"prompt": "x", "speed": 2},
             {"prompt": "a person runs", "frames": 100000}, {"prompt": "a person sits", "seconds": 0.5}]
    (tmp_path / "prompts.json").write_text(json.dumps(items))
    proc = run_batch(str(BLENDER_PYTHON), server, tmp_path, "bvh", tmp_path / "prompts.json")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "bvh" / "batch_report.json").read_text())
    errors = [it["error"] for it in report["items"] if it["status"] == "error"]
    assert any("item 1: needs a non-empty \"prompt\"" in e for e in errors), errors
    assert any("item 2: unknown key(s) speed" in e for e in errors), errors
    assert any("item 3:" in e and "100000" in e for e in errors), errors
    ok = [it for it in report["items"] if it["status"] == "ok"]
    assert [it["prompt"] for it in ok] == ["a person waves", "a person sits"]
    assert [it["frames"] for it in ok] == [12, 12] and all(Path(it["file"]).is_file() for it in ok)


@pytest.mark.slow
def test_batch_renders_three_prompts_to_mp4(server, tmp_path) -> None:  # noqa: F811
    if DEBIAN_BLENDER is None or shutil.which("ffprobe") is None:
        pytest.skip("needs `blender` and `ffprobe` on PATH (apt-get install blender python3-numpy ffmpeg)")
    prompts = tmp_path / "prompts.json"
    wanted = {"a person walks forward": 24, "a person jumps": 36, "a person waves": 30}
    items = [{"prompt": p, "frames": n} for p, n in wanted.items()]
    items.insert(1, {"prompt": ""})  # a bad entry: skipped and reported, the others still render
    prompts.write_text(json.dumps(items))
    proc = run_batch(DEBIAN_BLENDER, server, tmp_path, "mp4", prompts)
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 1, log  # one bad entry
    assert "item 1: needs a non-empty" in proc.stderr
    out = tmp_path / "out" / "mp4"
    report = json.loads((out / "batch_report.json").read_text())
    ok = [it for it in report["items"] if it["status"] == "ok"]
    assert len(ok) == 3 and len(report["items"]) == 4
    for it in ok:
        mp4 = Path(it["file"])
        assert mp4.suffix == ".mp4" and mp4.parent == out
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=nb_read_frames,width,height", "-of", "json", str(mp4)],
                               capture_output=True, text=True, check=True)
        stream = json.loads(probe.stdout)["streams"][0]
        assert int(stream["nb_read_frames"]) == wanted[it["prompt"]] == it["frames"], (mp4, stream)
        assert (stream["width"], stream["height"]) == (160, 120)
