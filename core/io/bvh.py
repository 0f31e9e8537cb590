"""BVH: read any skeleton (any channel order, 3 or 6 channels per joint), write SMPL's.

Reading gives a `SourceClip` in the file's own skeleton and units; `retarget.py` turns it
into an SMPL `Motion`. Writing produces a BVH of the SMPL skeleton (metres, Y up) that
Blender and other tools open.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from .. import rotations as R
from ..files import atomic_write_text
from ..motion import Motion
from ..skeleton import JOINT_NAMES, PARENTS, Skeleton, neutral_skeleton
from ..errors import MotionClipError
from .limits import MAX_ABS_VALUE, MAX_CHANNELS_PER_JOINT, LimitError, check_count, check_fps, read_bytes
from .source import SourceClip, SourceSkeleton


class BVHError(MotionClipError):
    """A BVH file that cannot be read; the message names the file, the line and what to do."""


_AXES = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


def _tokens(text: str):
    for lineno, line in enumerate(text.splitlines(), start=1):
        for tok in line.split():
            yield lineno, tok


def read_bvh(path: str | os.PathLike, extra_frames: str = "error") -> SourceClip:
    """Parse a BVH file into its own skeleton and per-frame local rotations / translations.

    extra_frames: what to do when the file holds more frame lines than its `Frames:` line
    declares: "error" (default) or "ignore" (read the declared number). Fewer lines than
    declared is always an error: the file is truncated.
    """
    path = Path(path)
    raw, text = _read_hierarchy_text(path)
    names, parents, offsets, channels, end_sites = _HierarchyParser(path, text).parse()
    frames, frame_time, pos, first_data_line = _read_motion_header(path, raw, text.count("\n"))
    fps = check_fps(path, 1.0 / frame_time, f"the frame rate (Frame Time: {frame_time:g} s)")
    if frames < 1:
        raise BVHError(f"{path}: the file has no frames (Frames: {frames})")
    check_count(path, "the number of frames (Frames: line)", frames, "MAX_FRAMES")
    n_chan = sum(len(c) for c in channels)
    check_count(path, f"frames x channels ({frames:,} x {n_chan})", frames * max(n_chan, 1), "MAX_VALUES")
    data = _read_numbers(path, raw[pos:], n_chan, first_data_line)
    data = _check_frame_data(path, data, frames, extra_frames, first_data_line)

    skel = SourceSkeleton(names=names, parents=parents, offsets=np.asarray(offsets, dtype=np.float64), end_sites=end_sites)
    euler, orders, local_pos = _channels_to_transforms(data, channels, skel.offsets)
    if abs(fps - round(fps)) < 0.01:
        fps = float(round(fps))
    return SourceClip(skeleton=skel, local_pos=local_pos, fps=fps, euler=euler, euler_orders=orders, path=str(path))


def _read_hierarchy_text(path: Path) -> tuple[bytes, str]:
    """The file's bytes and its text up to (not including) MOTION; errors for what is not a BVH."""
    try:
        raw = read_bytes(path)
    except OSError as exc:
        raise BVHError(f"{path}: cannot read file ({exc.strerror})") from exc
    cut_b = raw.find(b"MOTION")
    text = raw[: max(cut_b, 0)].decode("utf-8", errors="replace")
    if not raw.lstrip().startswith(b"HIERARCHY"):
        raise BVHError(f"{path}: not a BVH file (expected a HIERARCHY section followed by MOTION)")
    if cut_b < 0:
        lines = raw.count(b"\n") + 1
        raise BVHError(f"{path}: line {lines}: the file ends before its MOTION section; the file is truncated")
    return raw, text


class _HierarchyParser:
    """Walks the HIERARCHY tokens: joint names, parents, offsets, channels and End Sites."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.toks = list(_tokens(text))
        self.i = 1  # skip HIERARCHY
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[list[float]] = []
        self.channels: list[list[str]] = []
        self.end_sites: dict[int, np.ndarray] = {}
        self.stack: list[int] = []
        self.pending_end = False
        self.last_joint = -1

    def need(self, k: int, what: str) -> list[tuple[int, str]]:
        toks, i = self.toks, self.i
        if i + k > len(toks):
            line = toks[-1][0] if toks else 1
            raise BVHError(f"{self.path}: line {line}: file ends inside the hierarchy while reading {what}; "
                           f"the file is truncated")
        return toks[i:i + k]

    def num(self, tok: tuple[int, str], what: str) -> float:
        path = self.path
        try:
            v = float(tok[1])
        except ValueError:
            raise BVHError(f"{path}: line {tok[0]}: expected a number for {what}, found {tok[1]!r}") from None
        if not math.isfinite(v):
            raise BVHError(f"{path}: line {tok[0]}: {what} is {tok[1]}; offsets must be finite numbers")
        if abs(v) > MAX_ABS_VALUE:
            raise LimitError(f"{path}: line {tok[0]}: {what} {tok[1]} is beyond +-{MAX_ABS_VALUE:g} (MAX_ABS_VALUE in "
                             f"motionclip/core/io/limits.py)")
        return v

    def parse(self):
        path = self.path
        while self.i < len(self.toks):
            line, tok = self.toks[self.i]
            if tok in ("ROOT", "JOINT"):
                self._joint(line, tok)
            elif tok == "End":
                self.need(2, "End Site")
                self.pending_end = True
                self.i += 2
            elif tok == "{":
                self.stack.append(-2 if self.pending_end else self.last_joint)
                self.pending_end = False
                self.i += 1
            elif tok == "}":
                if not self.stack:
                    raise BVHError(f"{path}: line {line}: unmatched '}}'")
                self.stack.pop()
                self.i += 1
            elif tok == "OFFSET":
                self._offset(line)
            elif tok == "CHANNELS":
                self._channels(line)
            else:
                raise BVHError(f"{path}: line {line}: unexpected {tok!r} in the hierarchy")
        if not self.names:
            raise BVHError(f"{path}: the hierarchy has no joints")
        if self.stack:
            raise BVHError(f"{path}: the hierarchy is missing {len(self.stack)} closing brace(s); the file is truncated")
        return self.names, self.parents, self.offsets, self.channels, self.end_sites

    def _joint(self, line: int, tok: str) -> None:
        (_, name), = self.need(2, "a joint name")[1:]
        if tok == "ROOT" and self.stack:
            raise BVHError(f"{self.path}: line {line}: ROOT inside another joint")
        check_count(self.path, "the number of joints", len(self.names) + 1, "MAX_JOINTS")
        self.names.append(name)
        self.parents.append(self.stack[-1] if self.stack else -1)
        self.offsets.append([0.0, 0.0, 0.0])
        self.channels.append([])
        self.last_joint = len(self.names) - 1
        self.i += 2

    def _offset(self, line: int) -> None:
        vals = [self.num(t, "OFFSET") for t in self.need(4, "OFFSET")[1:]]
        stack = self.stack
        owner = stack[-1] if stack else -1
        if owner == -2:
            # End Site offset: belongs to the joint that encloses it.
            self.end_sites[[j for j in stack if j >= 0][-1]] = np.array(vals)
        elif owner >= 0:
            self.offsets[owner] = vals
        else:
            raise BVHError(f"{self.path}: line {line}: OFFSET outside a joint")
        self.i += 4

    def _channels(self, line: int) -> None:
        path = self.path
        (nl, ntok), = self.need(2, "CHANNELS")[1:]
        try:
            n = int(ntok)
        except ValueError:
            raise BVHError(f"{path}: line {nl}: expected a channel count after CHANNELS, found {ntok!r}") from None
        if not 0 <= n <= MAX_CHANNELS_PER_JOINT:
            raise BVHError(f"{path}: line {nl}: CHANNELS {n}; a joint has 0 to {MAX_CHANNELS_PER_JOINT} channels "
                           f"(MAX_CHANNELS_PER_JOINT in motionclip/core/io/limits.py)")
        chans = [t for _, t in self.need(2 + n, f"{n} channel names")[2:]]
        bad = [c for c in chans if c not in _AXES and c not in _POS]
        if bad:
            raise BVHError(f"{path}: line {line}: unknown channel {bad[0]!r}; expected X/Y/Z position or rotation "
                           f"(the line may be missing channels)")
        if self.stack and self.stack[-1] >= 0:
            self.channels[self.stack[-1]] = chans
        self.i += 2 + n


def _read_motion_header(path: Path, raw: bytes, header_lines: int) -> tuple[int, float, int, int]:
    """MOTION header: "Frames: N" and "Frame Time: dt", any whitespace.

    Works on the raw bytes: pandas reads the frame lines straight from them (no decode /
    re-encode). Returns (frames, frame_time, byte offset of the first frame line, its line number).
    """
    pos = raw.find(b"MOTION")
    pos = raw.find(b"\n", pos)
    pos = len(raw) if pos < 0 else pos + 1
    line_no = header_lines + 2
    frames, frame_time = None, None
    while pos < len(raw) and (frames is None or frame_time is None):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        line = raw[pos:end].decode("utf-8", errors="replace")
        if line.strip():
            key, _, val = line.partition(":")
            key = key.strip().lower()
            try:
                if key == "frames":
                    frames = int(val.strip())
                elif key == "frame time":
                    frame_time = float(val.strip())
                else:
                    break
            except ValueError:
                raise BVHError(f"{path}: line {line_no}: cannot read {key!r} value {val.strip()!r}") from None
        pos = end + 1
        line_no += 1
    if frames is None or frame_time is None:
        raise BVHError(f"{path}: line {line_no}: expected 'Frames:' and 'Frame Time:' after MOTION")
    if not (frame_time > 0 and math.isfinite(frame_time)):
        raise BVHError(f"{path}: Frame Time must be positive, got {frame_time}")
    return frames, frame_time, pos, line_no


def _check_frame_data(path: Path, data: np.ndarray, frames: int, extra_frames: str,
                      first_data_line: int) -> np.ndarray:
    """Hold the frame lines to the declared count and to finite, bounded values."""
    if data.shape[0] < frames:
        raise BVHError(f"{path}: the header says Frames: {frames} but the file has only {data.shape[0]} frame lines; "
                       f"the file is truncated - re-export it, or fix the Frames: line to keep what is there")
    if data.shape[0] > frames:
        if extra_frames != "ignore":
            raise BVHError(f"{path}: the header says Frames: {frames} but the file has {data.shape[0]} frame lines; "
                           f"fix the Frames: line, or pass --extra-frames ignore to read the first {frames}")
        data = data[:frames]
    bad = ~np.isfinite(data)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise BVHError(f"{path}: line {first_data_line + r}: value {c + 1} is {data[r, c]}; motion data must be finite numbers")
    big = np.abs(data) > MAX_ABS_VALUE
    if big.any():
        r, c = np.argwhere(big)[0]
        raise LimitError(f"{path}: line {first_data_line + r}: value {c + 1} is {data[r, c]:g}, beyond "
                         f"+-{MAX_ABS_VALUE:g} (MAX_ABS_VALUE in motionclip/core/io/limits.py)")
    return data


def _read_numbers(path: Path, body: bytes, n_chan: int, first_line: int) -> np.ndarray:
    """Frame lines -> [frames, channels] float64. pandas' C parser: ~3x numpy's text parser."""
    import pandas as pd

    if not body.strip():
        return np.zeros((0, n_chan))
    try:
        df = pd.read_csv(io.BytesIO(body), sep=r"\s+", header=None, dtype=np.float64, engine="c",
                         skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        msg = str(exc)
        line = ""
        if "line" in msg:
            try:
                line = f"line {first_line - 1 + int(msg.split('line')[1].split(',')[0])}: "
            except ValueError:
                line = ""
        raise BVHError(f"{path}: {line}a frame line has the wrong number of values ({msg}); "
                       f"each frame needs {n_chan} values, one per channel") from None
    except ValueError as exc:
        raise BVHError(f"{path}: a frame line holds something that is not a number ({exc})") from None
    data = df.to_numpy()
    if data.shape[1] != n_chan:
        # Ragged last line (e.g. truncated file) shows up as NaN padding.
        raise BVHError(f"{path}: frame lines have {data.shape[1]} values but the hierarchy declares {n_chan} channels; "
                       f"the hierarchy or the data is incomplete")
    nan_rows = np.isnan(data).any(axis=1)
    if nan_rows.any():
        r = int(np.argmax(nan_rows))
        raise BVHError(f"{path}: line {first_line + r}: frame {r} has missing or NaN values; "
                       f"each frame needs {n_chan} finite values")
    return data


def _channels_to_transforms(data: np.ndarray, channels: list[list[str]], offsets: np.ndarray):
    """Per-joint Euler angles [J, T, 3] (radians, float32), their orders, and local translations [J, T, 3]."""
    T = data.shape[0]
    # One row per channel, plus a zero row that joints with fewer than 3 rotation channels read.
    by_channel = torch.from_numpy(np.vstack([data.T, np.zeros((1, T))]).astype(np.float32))  # [C + 1, T]
    local_pos = torch.from_numpy(offsets.astype(np.float32))[:, None, :].repeat(1, T, 1)
    cols: list[list[int]] = []
    orders: list[str] = []
    col = 0
    for j, chans in enumerate(channels):
        rot_cols, order = [], ""
        for c in chans:
            if c in _AXES:
                rot_cols.append(col)
                order += _AXES[c]
            else:
                # Position channels give the joint's local translation (they replace OFFSET).
                local_pos[j, :, _POS[c]] = by_channel[col]
            col += 1
        order += "".join([a for a in "XYZ" if a not in order][: 3 - len(order)])
        rot_cols += [-1] * (3 - len(rot_cols))
        cols.append(rot_cols)
        orders.append(order)
    euler = torch.deg2rad(by_channel[torch.tensor(cols)]).transpose(1, 2)  # [J, T, 3]
    return euler, orders, local_pos


# --- writing SMPL BVH -------------------------------------------------------------------------------------

WRITE_ORDER = "ZYX"


def write_bvh(motion: Motion, path: str | os.PathLike, skeleton: Skeleton | None = None, scale: float = 1.0) -> Path:
    """Write the SMPL skeleton and motion as BVH (Y up; metres unless `scale` says otherwise).

    The root has 6 channels whose positions are the pelvis' absolute position; every other
    joint has 3 rotation channels in ZYX order.
    """
    skeleton = skeleton or neutral_skeleton()
    off = skeleton.offsets.to(torch.float64).numpy() * scale
    children: dict[int, list[int]] = {j: [] for j in range(len(JOINT_NAMES))}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            children[p].append(j)
    out: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if PARENTS[j] < 0 else "JOINT"
        out.append(f"{pad}{kind} {JOINT_NAMES[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}  OFFSET {off[j, 0]:.6f} {off[j, 1]:.6f} {off[j, 2]:.6f}")
        rot = " ".join(f"{a}rotation" for a in WRITE_ORDER)
        if PARENTS[j] < 0:
            out.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot}")
        else:
            out.append(f"{pad}  CHANNELS 3 {rot}")
        if children[j]:
            for c in children[j]:
                emit(c, depth + 1)
        else:
            tip = _end_site(j, skeleton) * scale
            out.append(f"{pad}  End Site")
            out.append(f"{pad}  {{")
            out.append(f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}")
            out.append(f"{pad}  }}")
        out.append(f"{pad}}}")

    emit(0, 0)
    order = _dfs_order()
    euler = torch.rad2deg(R.matrix_to_euler(R.quat_to_matrix(motion.quats.to(torch.float64)), WRITE_ORDER))  # [T, 24, 3]
    root = (skeleton.rest_joints[0].to(torch.float64) + motion.trans.to(torch.float64)) * scale  # [T, 3]
    frame = torch.cat([root, euler[:, order].reshape(motion.num_frames, -1)], dim=1).numpy()
    out.append("MOTION")
    out.append(f"Frames: {motion.num_frames}")
    out.append(f"Frame Time: {1.0 / motion.fps:.8f}")
    buf = io.StringIO()
    np.savetxt(buf, frame, fmt="%.6f")
    atomic_write_text(Path(path), "\n".join(out) + "\n" + buf.getvalue())
    return Path(path)


def _dfs_order() -> list[int]:
    children: dict[int, list[int]] = {j: [] for j in range(len(JOINT_NAMES))}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            children[p].append(j)
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children[j]:
            visit(c)

    visit(0)
    return order


def _end_site(j: int, skeleton: Skeleton) -> np.ndarray:
    """A short tip continuing the joint's bone (head: straight up)."""
    rest = skeleton.rest_joints.to(torch.float64)
    p = PARENTS[j]
    d = rest[j] - rest[p]
    if JOINT_NAMES[j] == "Head":
        return np.array([0.0, 0.1, 0.0])
    return (d / d.norm().clamp(min=1e-9) * 0.05).numpy()
