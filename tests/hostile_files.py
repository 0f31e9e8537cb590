"""A corpus of hostile motion files, made on demand (nothing binary is kept in the repository).

`make_corpus(root)` writes every bad file below and a few good ones into `root` and returns them,
with a texts CSV that labels every file (so a bad file fails for what is wrong with it, not for a
missing label). Used by tests/test_hostile_inputs.py and benchmarks/hostile_inputs.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionclip.core.io import save_motion
from motionclip.core.motion import Motion

GIB = 1 << 30


@dataclass
class Corpus:
    bad: list[Path]
    good: list[Path]
    texts: Path


def good_motion(frames: int = 40, seed: int = 0, fps: float = 30.0) -> Motion:
    g = torch.Generator().manual_seed(seed)
    aa = 0.3 * torch.randn(frames, 24, 3, generator=g)
    trans = torch.cumsum(0.01 * torch.randn(frames, 3, generator=g), 0)
    return Motion.from_axis_angle(aa, trans, fps)


# --- archive building blocks ---------------------------------------------------------------------------------

def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def bomb_member(header: bytes, zeros: int) -> tuple[bytes, int, int]:
    """(deflated data, crc, size) of `header` followed by `zeros` zero bytes, built from one compressed chunk
    repeated (independent deflate blocks), so a 1 GB member takes a second to make and a megabyte to store."""
    chunk = 1 << 24
    n, tail = divmod(zeros, chunk)
    zero_block = _deflate(bytes(chunk))
    data = _deflate(header) + zero_block * n + _deflate(bytes(tail)) + b"\x03\x00"
    crc = zlib.crc32(header)
    zchunk = bytes(chunk)
    for _ in range(n):
        crc = zlib.crc32(zchunk, crc)
    crc = zlib.crc32(bytes(tail), crc)
    return data, crc, len(header) + zeros


def write_zip(path: Path, members: dict[str, bytes | tuple[bytes, int, int]]) -> Path:
    """A zip of plain members (stored) or pre-deflated (data, crc, size) members."""
    out, central = bytearray(), bytearray()
    for name, m in members.items():
        raw = name.encode()
        if isinstance(m, bytes):
            method, data, crc, size = 0, m, zlib.crc32(m), len(m)
        else:
            method, (data, crc, size) = 8, m
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0)
        out += raw + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(raw), 0, 0, 0, 0, 0, offset) + raw
    n = len(members)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0)
    path.write_bytes(bytes(out))
    return path


def motion_zip(path: Path, header: object, quats: object = None, trans: object = None,
               raw_header: bytes | None = None) -> Path:
    q = good_motion().quats.numpy() if quats is None else quats
    t = good_motion().trans.numpy() if trans is None else trans
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return write_zip(path, {"header.json": h, "quats.npy": npy_bytes(np.asarray(q)), "trans.npy": npy_bytes(np.asarray(t))})


def _corrupt(path: Path, member: bytes, at: int) -> Path:
    """Flip one byte inside a stored member's data, so its checksum no longer matches."""
    raw = bytearray(path.read_bytes())
    raw[raw.index(member) + len(member) + at] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def npz(path: Path, **arrays: object) -> Path:
    return write_zip(path, {f"{k}.npy": npy_bytes(np.asarray(v)) for k, v in arrays.items()})


# --- the corpus ----------------------------------------------------------------------------------------------

def _bvh_variants(root: Path, good_bvh: str) -> dict[str, str | bytes]:
    head, motion_part = good_bvh.split("MOTION", 1)
    lines = motion_part.strip().splitlines()
    frames = "\n".join(lines[2:])
    zero = "\n".join("OFFSET 0 0 0" if ln.strip().startswith("OFFSET") else ln for ln in head.splitlines())
    deep = "HIERARCHY\n" + "JOINT j {\nOFFSET 0 0 0\nCHANNELS 3 Xrotation Yrotation Zrotation\n" * 20000
    wide = ("HIERARCHY\nROOT r\n{\nOFFSET 0 0 0\nCHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation\n"
            + "JOINT j\n{\nOFFSET 0 1 0\nCHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation\n" * 59
            + "}\n" * 60)
    return {
        "channels_minus2.bvh": head.replace("CHANNELS 3", "CHANNELS -2", 1) + "MOTION" + motion_part,
        "channels_huge.bvh": head.replace("CHANNELS 3", "CHANNELS 999999999999", 1) + "MOTION" + motion_part,
        "zero_offsets.bvh": zero + "\nMOTION" + motion_part,
        "tiny_frame_time.bvh": f"{head}MOTION\nFrames: {len(lines) - 2}\nFrame Time: 1e-320\n{frames}\n",
        "slow_frame_time.bvh": f"{head}MOTION\nFrames: {len(lines) - 2}\nFrame Time: 1000000\n{frames}\n",
        "frames_billion.bvh": f"{head}MOTION\nFrames: 1000000000000\nFrame Time: 0.0333333\n{frames}\n",
        "frames_negative.bvh": f"{head}MOTION\nFrames: -5\nFrame Time: 0.0333333\n{frames}\n",
        "frames_word.bvh": f"{head}MOTION\nFrames: many\nFrame Time: 0.0333333\n{frames}\n",
        "nan_values.bvh": head + "MOTION" + motion_part.replace(lines[5].split()[3], "nan", 1),
        "huge_value.bvh": head + "MOTION" + motion_part.replace(lines[5].split()[3], "1e400", 1),
        "inf_offset.bvh": re.sub(r"OFFSET (\S+)", "OFFSET inf", head, count=1) + "MOTION" + motion_part,
        "truncated.bvh": good_bvh[: len(good_bvh) * 2 // 3],
        "truncated_header.bvh": good_bvh[: len(head) // 2],
        "deep_hierarchy.bvh": deep + "}\n" * 20000 + "MOTION\nFrames: 1\nFrame Time: 0.03\n0\n",
        "no_frames.bvh": f"{head}MOTION\nFrames: 0\nFrame Time: 0.0333333\n",
        "ragged.bvh": head + "MOTION" + motion_part.replace(lines[6], " ".join(lines[6].split()[:7]), 1),
        "extra_frames.bvh": f"{head}MOTION\nFrames: 3\nFrame Time: 0.0333333\n{frames}\n",
        "unknown_channel.bvh": head.replace("Xrotation", "Wrotation", 1) + "MOTION" + motion_part,
        "unmatched_brace.bvh": head.replace("{", "}", 1) + "MOTION" + motion_part,
        "no_smpl_joints.bvh": re.sub(r"(ROOT|JOINT) (\S+)", lambda m: f"{m.group(1)} bone{m.start()}", head)
        + "MOTION" + motion_part,
        "short.bvh": f"{head}MOTION\nFrames: 3\nFrame Time: 0.0333333\n" + "\n".join(lines[2:5]) + "\n",
        "values_many.bvh": f"{wide}MOTION\nFrames: 199999\nFrame Time: 0.0333333\n" + "0 " * 360 + "\n",
        "big_value.bvh": head + "MOTION" + motion_part.replace(lines[5].split()[3], "1e30", 1),
        "huge_offset.bvh": re.sub(r"(JOINT L_Wrist\s*\{\s*)OFFSET [^\n]*", r"\1OFFSET 1e39 0 0", head)
        + "MOTION" + motion_part,
        "empty.bvh": "",
        "binary.bvh": bytes(range(256)) * 40,
        "utf16.bvh": good_bvh.encode("utf-16"),
    }


def _json_variants(good: dict) -> dict[str, str | bytes]:
    dm_frame = [0.0333, 0, 0.9, 0] + [1.0, 0, 0, 0] * 3 + ([1.0, 0, 0, 0, 0.1, 1.0, 0, 0, 0, 1.0, 0, 0, 0, 0.1] * 2)
    huge_int = dict(good, fps=int("9" * 400))
    return {
        "binary.json": b'{"Frames": ' + bytes(range(128, 256)) * 20,
        "deep.json": "[" * 100000 + "]" * 100000,
        "deep_dict.json": '{"format": "motionclip-json", "meta": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        "huge_int.json": json.dumps(huge_int),
        "digits_5000.json": json.dumps(good).replace('"fps": 30.0', '"fps": ' + "7" * 5000),
        "nan.json": re.sub(r'("rotations": \[\[\[)[^,]+', r"\1NaN", json.dumps(good), count=1),
        "string_meta.json": json.dumps(dict(good, meta="not an object")),
        "rotations_text.json": json.dumps(dict(good, rotations="lots")),
        "fps_text.json": json.dumps(dict(good, fps="thirty")),
        "fps_billion.json": json.dumps(dict(good, fps=1e9)),
        "joint_names_number.json": json.dumps(dict(good, joint_names=5)),
        "trans_short.json": json.dumps(dict(good, trans=good["trans"][:3])),
        "zero_quats.json": json.dumps(dict(good, rotations=[[[0, 0, 0, 0]] * 24] * len(good["rotations"]))),
        "frames_many.json": json.dumps(dict(good, rotations=[0] * 200_001)),
        "deepmimic_negative_dt.txt": json.dumps({"Loop": "wrap", "Frames": [dm_frame] * 5 + [[-1.0] + dm_frame[1:]]
                                                 + [dm_frame] * 5}),
        "empty.json": "",
        "top_list.json": "[1, 2, 3]",
        "utf16.json": json.dumps(good).encode("utf-16"),
        "deepmimic_tiny_dt.txt": json.dumps({"Loop": "wrap", "Frames": [[1e-320] + dm_frame[1:]] * 20}),
        "deepmimic_gap.txt": json.dumps({"Loop": "wrap", "Frames": [dm_frame] * 10 + [[1e9] + dm_frame[1:]] + [dm_frame] * 10}),
        "deepmimic_short_frames.txt": json.dumps({"Loop": "wrap", "Frames": [[0.03, 1, 2]] * 20}),
        "deepmimic_strings.txt": json.dumps({"Loop": "wrap", "Frames": [["x"] * 44] * 20}),
    }


def _archive_variants(root: Path, good: Motion) -> list[Path]:
    q, t = good.quats.numpy(), good.trans.numpy()
    T = q.shape[0]
    hdr = {"format": "motionclip-motion", "version": 1, "fps": 30.0, "meta": {}}
    poses = np.zeros((T, 72)) + 0.1
    ok = dict(poses=poses, trans=np.zeros((T, 3)), mocap_framerate=np.float64(30.0))
    frames_bomb = GIB // (24 * 4 * 4)
    out = [
        motion_zip(root / "header_list.motion", [hdr]),
        motion_zip(root / "header_nested.motion", dict(hdr, fps={"value": 30})),
        motion_zip(root / "header_no_fps.motion", {k: v for k, v in hdr.items() if k != "fps"}),
        motion_zip(root / "header_string.motion", "motionclip-motion"),
        motion_zip(root / "string_meta.motion", dict(hdr, meta="a string")),
        motion_zip(root / "header_binary.motion", None, raw_header=bytes(range(256))),
        motion_zip(root / "header_deep.motion", None, raw_header=b"[" * 50000 + b"]" * 50000),
        motion_zip(root / "fps_1e-6.motion", dict(hdr, fps=1e-6)),
        motion_zip(root / "quats_object.motion", hdr, quats=np.array([{"a": 1}], dtype=object)),
        motion_zip(root / "quats_shape.motion", hdr, quats=np.zeros((T, 5))),
        motion_zip(root / "huge_int.motion", None, raw_header=b'{"format": "motionclip-motion", "fps": 1' + b"0" * 400 + b"}"),
        write_zip(root / "bomb.motion", {"header.json": json.dumps(hdr).encode(),
                                         "quats.npy": bomb_member(npy_header((frames_bomb, 24, 4), "<f4"), frames_bomb * 384),
                                         "trans.npy": npy_bytes(t)}),
        write_zip(root / "header_lie.motion", {"header.json": json.dumps(hdr).encode(),
                                               "quats.npy": npy_header((10 ** 9, 24, 4), "<f4") + bytes(384),
                                               "trans.npy": npy_bytes(t)}),
        npz(root / "poses_object.npz", **dict(ok, poses=np.array([[1, 2]], dtype=object))),
        npz(root / "fps_text.npz", **dict(ok, mocap_framerate=np.str_("thirty"))),
        npz(root / "fps_1e-6.npz", **dict(ok, mocap_framerate=np.float64(1e-6))),
        npz(root / "fps_zero.npz", **dict(ok, mocap_framerate=np.float64(0))),
        npz(root / "fps_nan.npz", **dict(ok, mocap_framerate=np.float64("nan"))),
        npz(root / "fps_empty.npz", **dict(ok, mocap_framerate=np.zeros(0))),
        npz(root / "poses_inf.npz", **dict(ok, poses=np.full((T, 72), np.inf))),
        npz(root / "poses_3d.npz", **dict(ok, poses=np.zeros((T, 24, 3)))),
        npz(root / "poses_text.npz", **dict(ok, poses=np.array(["a"] * 72 * T).reshape(T, 72))),
        npz(root / "betas_huge.npz", **dict(ok, betas=np.zeros(10 ** 6))),
        write_zip(root / "bomb.npz", {"poses.npy": bomb_member(npy_header((GIB // 576, 72)), (GIB // 576) * 576),
                                      "trans.npy": npy_bytes(np.zeros((3, 3))),
                                      "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "bomb_values.npz", {"poses.npy": bomb_member(npy_header((199_000, 300)), 199_000 * 2400),
                                             "trans.npy": npy_bytes(np.zeros((3, 3))),
                                             "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "header_lie.npz", {"poses.npy": npy_header((10 ** 10, 72)) + bytes(576),
                                            "trans.npy": npy_bytes(np.zeros((3, 3))),
                                            "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "header_lie_member.npz", {"poses.npy": npy_header((150_000, 72)) + bytes(576),
                                                   "trans.npy": npy_bytes(np.zeros((3, 3))),
                                                   "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "bomb_in_limits.npz", {"poses.npy": bomb_member(npy_header((200_000, 72)), 200_000 * 576),
                                                "trans.npy": bomb_member(npy_header((200_000, 3)), 200_000 * 24),
                                                "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "frames_many.npz", {"poses.npy": bomb_member(npy_header((200_001, 72)), 200_001 * 576),
                                             "trans.npy": npy_bytes(np.zeros((3, 3))),
                                             "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        npz(root / "split_layout_mismatch.npz", root_orient=np.zeros((T, 3)), pose_body=np.zeros((T + 1, 63)),
            trans=np.zeros((T, 3)), mocap_framerate=np.float64(30)),
        motion_zip(root / "version_text.motion", dict(hdr, version="one")),
        write_zip(root / "no_header.motion", {"quats.npy": npy_bytes(q), "trans.npy": npy_bytes(t)}),
        _corrupt(motion_zip(root / "header_crc.motion", hdr), b"header.json", 5),
        npz(root / "trans_mismatch.npz", **dict(ok, trans=np.zeros((T + 1, 3)))),
        npz(root / "no_poses.npz", trans=np.zeros((T, 3)), mocap_framerate=np.float64(30)),
        motion_zip(root / "version_99.motion", dict(hdr, version=99)),
        _corrupt(motion_zip(root / "crc_bad.motion", hdr), b"quats.npy", 400),
        write_zip(root / "npy_version.npz", {"poses.npy": b"\x93NUMPY\x07\x00" + bytes(120),
                                             "trans.npy": npy_bytes(np.zeros((T, 3))),
                                             "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        write_zip(root / "npy_short.npz", {"poses.npy": npy_bytes(poses)[:-64], "trans.npy": npy_bytes(np.zeros((T, 3))),
                                           "mocap_framerate.npy": npy_bytes(np.float64(30))}),
        npz(root / "poses_6d.npz", **dict(ok, poses=np.zeros((T, 1, 1, 1, 1, 72)))),
        motion_zip(root / "header_big.motion", dict(hdr, meta={"notes": " " * (2 << 20)})),
        write_zip(root / "many_members.npz", {f"a{i}.npy": npy_bytes(np.zeros(1)) for i in range(5000)}),
    ]
    good_npz = root / "good_source.npz.tmp"
    save_motion(good, good_npz, format="amass")
    raw = good_npz.read_bytes()
    good_npz.unlink()
    (root / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (root / "empty.npz").write_bytes(b"")
    (root / "empty.motion").write_bytes(b"")
    (root / "text.motion").write_text("HIERARCHY\nthis is not a motion\n")
    return out + [root / "truncated.npz", root / "empty.npz", root / "empty.motion", root / "text.motion"]


def make_corpus(root: Path) -> Corpus:
    """Write the hostile files and five good ones (one per readable format) into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    good = [root / "good_walk.bvh", root / "good_amass.npz", root / "good_ours.json", root / "good_lossless.motion"]
    for i, p in enumerate(good):
        save_motion(good_motion(seed=i), p)
    m = good_motion(seed=5)  # column-major arrays, as some tools write them
    good.append(npz(root / "good_fortran.npz", poses=np.asfortranarray(m.axis_angle().reshape(-1, 72).numpy()),
                    trans=np.asfortranarray(m.trans.numpy()), mocap_framerate=np.float64(30)))
    good_bvh = good[0].read_text()
    good_json = json.loads(good[2].read_text())
    bad: list[Path] = []
    for name, content in {**_bvh_variants(root, good_bvh), **_json_variants(good_json)}.items():
        p = root / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        bad.append(p)
    bad += _archive_variants(root, good_motion())
    # Wrong extensions: each format's bytes under another's name.
    (root / "bvh_named.npz").write_bytes(good[0].read_bytes())
    (root / "npz_named.bvh").write_bytes(good[1].read_bytes())
    (root / "motion_named.json").write_bytes(good[3].read_bytes())
    (root / "json_named.motion").write_bytes(good[2].read_bytes())
    (root / "unknown.fbx").write_bytes(b"Kaydara FBX Binary  \x00")
    bad += [root / n for n in ("bvh_named.npz", "npz_named.bvh", "motion_named.json", "json_named.motion", "unknown.fbx")]
    texts = root / "texts.csv"
    texts.write_text("file,text\n" + "".join(f"{p.stem},a person walks forward\n" for p in good + bad))
    return Corpus(bad=bad, good=good, texts=texts)


# --- running the CLI in a child with an address-space limit ---------------------------------------------

SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


def child_env() -> dict[str, str]:
    """One BLAS / OpenMP thread and two malloc arenas: each thread reserves address space."""
    return {**os.environ, **SINGLE_THREADED}


def import_footprint() -> int:
    """Bytes of address space a process maps by importing the CLI (a CUDA build of torch maps about 3 GB)."""
    code = ("import motionclip.core.cli, motionclip.core.io, pandas\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    return int(out.stdout.split()[-1]) * 1024


def run_limited(args: list[str], limit: int, timeout: float, module: str = "motionclip.core.cli"
                ) -> subprocess.CompletedProcess:
    """`python -m module ARGS` with RLIMIT_AS = limit bytes; raises TimeoutExpired past `timeout` s."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, "-m", module, *args] if module else [sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), preexec_fn=cap, timeout=timeout)


if __name__ == "__main__":
    c = make_corpus(Path(sys.argv[1]))
    print(f"{len(c.bad)} hostile files, {len(c.good)} good files in {sys.argv[1]}")
