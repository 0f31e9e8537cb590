"""Motion: SMPL local joint rotations, root translation and frame rate, and what can be done to it.

Rotations are stored as unit quaternions (w, x, y, z) [T, 24, 4]; `trans` [T, 3] is SMPL's
`transl` (the pelvis sits at skeleton.rest_joints[0] + trans), in metres, Y up.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from . import rotations as R
from .errors import MotionClipError
from .files import atomic_write_bytes
from .skeleton import MIRROR, NUM_JOINTS, Skeleton, neutral_skeleton

FORMAT_VERSION = 1
MOTION_SUFFIX = ".motion"


class MotionError(MotionClipError):
    """A motion whose data is unusable (wrong shapes, non-finite values, bad frame rate)."""


@dataclass
class Motion:
    quats: Tensor  # [T, 24, 4] local rotations, (w, x, y, z)
    trans: Tensor  # [T, 3] root translation, metres, Y up
    fps: float
    betas: Tensor | None = None  # [B] body shape, when the source had one
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.quats = torch.as_tensor(self.quats, dtype=torch.float32)
        self.trans = torch.as_tensor(self.trans, dtype=torch.float32)
        if self.betas is not None:
            self.betas = torch.as_tensor(self.betas, dtype=torch.float32)
        self.fps = float(self.fps)
        self.validate()

    # --- construction -------------------------------------------------------------------------------

    @classmethod
    def from_rotmats(cls, rotmats: Tensor, trans: Tensor, fps: float, **kw: Any) -> "Motion":
        return cls(R.matrix_to_quat(torch.as_tensor(rotmats, dtype=torch.float64)), trans, fps, **kw)

    @classmethod
    def from_axis_angle(cls, aa: Tensor, trans: Tensor, fps: float, **kw: Any) -> "Motion":
        aa = torch.as_tensor(aa, dtype=torch.float64)
        return cls(R.axis_angle_to_quat(aa.reshape(aa.shape[0], NUM_JOINTS, 3)), trans, fps, **kw)

    @classmethod
    def rest(cls, frames: int, fps: float = 30.0) -> "Motion":
        q = torch.zeros(frames, NUM_JOINTS, 4)
        q[..., 0] = 1.0
        return cls(q, torch.zeros(frames, 3), fps)

    def validate(self) -> None:
        q, t = self.quats, self.trans
        if q.ndim != 3 or q.shape[1:] != (NUM_JOINTS, 4):
            raise MotionError(f"rotations must have shape [frames, 24, 4], got {list(q.shape)}")
        if t.shape != (q.shape[0], 3):
            raise MotionError(f"trans must have shape [{q.shape[0]}, 3] to match the rotations, got {list(t.shape)}")
        if q.shape[0] < 1:
            raise MotionError("a motion needs at least one frame")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise MotionError(f"fps must be a positive number, got {self.fps}")
        for name, arr in (("rotations", q), ("trans", t)):
            bad = ~torch.isfinite(arr)
            if bad.any():
                frame = int(bad.reshape(arr.shape[0], -1).any(1).nonzero()[0])
                raise MotionError(f"{name} contain NaN or infinite values (first at frame {frame})")
        norms = q.norm(dim=-1)
        if (norms < 1e-3).any():
            raise MotionError("rotations contain zero-length quaternions")
        self.quats = q / norms[..., None]

    # --- views ----------------------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return int(self.quats.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    def rotmats(self) -> Tensor:
        return R.quat_to_matrix(self.quats)

    def axis_angle(self) -> Tensor:
        return R.quat_to_axis_angle(self.quats)

    def rot6d(self) -> Tensor:
        return R.quat_to_rot6d(self.quats)

    def joints(self, skeleton: Skeleton | None = None) -> Tensor:
        """Joint positions [T, 24, 3] by forward kinematics."""
        skeleton = skeleton or neutral_skeleton()
        return skeleton.forward_kinematics(self.rotmats(), self.trans)[0]

    def copy(self, **changes: Any) -> "Motion":
        base = dict(quats=self.quats.clone(), trans=self.trans.clone(), fps=self.fps,
                    betas=None if self.betas is None else self.betas.clone(), meta=json.loads(json.dumps(self.meta)))
        base.update(changes)
        return replace(self, **base)

    # --- editing ----------------------------------------------------------------------------------------

    def crop(self, start: int, length: int | None = None) -> "Motion":
        end = self.num_frames if length is None else start + length
        if not (0 <= start < end <= self.num_frames):
            raise MotionError(f"crop [{start}, {end}) is outside the motion's {self.num_frames} frames")
        return self.copy(quats=self.quats[start:end].clone(), trans=self.trans[start:end].clone())

    def windows(self, length: int, stride: int | None = None) -> Iterator["Motion"]:
        """Crops of `length` frames every `stride` frames (default: length, no overlap)."""
        stride = stride or length
        for start in range(0, self.num_frames - length + 1, stride):
            yield self.crop(start, length)

    def resample(self, fps: float) -> "Motion":
        """Resample to another frame rate: slerp for rotations, linear for translation.

        Frames land at k / fps for every k with k / fps within the motion's duration.
        """
        if not (math.isfinite(fps) and fps > 0):
            raise MotionError(f"target fps must be positive, got {fps}")
        if abs(fps - self.fps) < 1e-9 or self.num_frames == 1:
            return self.copy(fps=float(fps))
        from .io.limits import check_count

        span = self.duration * fps + 1e-6
        n = math.floor(span) + 1 if math.isfinite(span) else span
        check_count(self.meta.get("source") or "motion", f"resampling {self.num_frames} frames at {self.fps:g} fps "
                    f"to {fps:g} fps: the number of frames", n, "MAX_FRAMES")
        return self.sample_at(torch.arange(n, dtype=torch.float64) * (self.fps / fps), fps)

    def sample_at(self, frame_pos: Tensor, fps: float) -> "Motion":
        """A motion at fractional source-frame positions [N] (slerp / lerp between neighbours)."""
        frame_pos = frame_pos.to(torch.float64).clamp(0, self.num_frames - 1)
        i0 = frame_pos.floor().long().clamp(max=self.num_frames - 1)
        i1 = (i0 + 1).clamp(max=self.num_frames - 1)
        w = (frame_pos - i0.to(torch.float64)).to(torch.float32)
        q = R.quat_slerp(self.quats[i0], self.quats[i1], w[:, None, None])
        t = self.trans[i0] * (1 - w[:, None]) + self.trans[i1] * w[:, None]
        return self.copy(quats=q, trans=t, fps=float(fps))

    def facing(self, skeleton: Skeleton | None = None) -> Tensor:
        """Unit facing direction on the floor (XZ plane) per frame [T, 3], from the hips."""
        j = self.joints(skeleton)
        return facing_from_joints(j)

    def canonicalize(self, skeleton: Skeleton | None = None, floor: bool = True) -> "Motion":
        """Start at the origin facing +Z and, with `floor`, put the clip's lowest point on the floor
        (y = 0); without it, heights are kept (e.g. for a window cut from a canonical clip)."""
        skeleton = skeleton or neutral_skeleton()
        j = self.joints(skeleton)
        f = facing_from_joints(j[:1])[0]
        yaw = math.atan2(float(f[0]), float(f[2]))  # rotation about Y that took +Z to f
        turn = R.axis_angle_to_matrix(torch.tensor([0.0, -yaw, 0.0]))  # [3, 3]
        rest_root = skeleton.rest_joints[0]
        root_world = rest_root + self.trans  # [T, 3]
        new_root = root_world @ turn.T
        quats = self.quats.clone()
        quats[:, 0] = R.quat_mul(R.matrix_to_quat(turn)[None], self.quats[:, 0])
        # Joint heights do not change under a yaw turn: place the clip's lowest point on the floor.
        lift = float(skeleton.rest_joints[:, 1].min() - skeleton.sole_y) - float(j[..., 1].min()) if floor else 0.0
        new_root = new_root + torch.tensor([-float(new_root[0, 0]), float(lift), -float(new_root[0, 2])])
        return self.copy(quats=quats, trans=new_root - rest_root)

    def mirror(self, skeleton: Skeleton | None = None) -> "Motion":
        """Reflect across the body's sagittal plane (x -> -x), swapping left and right joints."""
        skeleton = skeleton or neutral_skeleton()
        q = self.quats[:, list(MIRROR)] * torch.tensor([1.0, 1.0, -1.0, -1.0])
        rest_root = skeleton.rest_joints[0]
        flip = torch.tensor([-1.0, 1.0, 1.0])
        trans = (rest_root + self.trans) * flip - rest_root
        meta = json.loads(json.dumps(self.meta))
        meta["mirrored"] = not meta.get("mirrored", False)
        return self.copy(quats=q, trans=trans, meta=meta)

    # --- our own lossless file format --------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the lossless `.motion` file (a zip of .npy arrays and a JSON header; no pickle)."""
        path = Path(path)
        arrays = {"quats": self.quats.numpy(), "trans": self.trans.numpy()}
        if self.betas is not None:
            arrays["betas"] = self.betas.numpy()
        header = {"format": "motionclip-motion", "version": FORMAT_VERSION, "fps": self.fps, "meta": self.meta}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            # Fixed entry dates: the same motion always gives the same bytes.
            entry = lambda name: zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(entry("header.json"), json.dumps(header))
            for name, arr in arrays.items():
                b = io.BytesIO()
                np.save(b, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(entry(f"{name}.npy"), b.getvalue())
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Motion":
        """Read a `.motion` file; its sizes, header and arrays are checked before anything large is read."""
        from .io.limits import MAX_HEADER_BYTES, check_fps, loads_json, npy_members, open_zip, read_member, read_npy

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        with open_zip(path, MotionError, ".motion file") as zf:
            if "header.json" not in zf.namelist():
                raise MotionError(f"{path}: not a readable .motion file (no header.json); re-create it with "
                                  f"`motionclip convert`")
            header = loads_json(read_member(zf, "header.json", path, MotionError, MAX_HEADER_BYTES), path, MotionError)
            _check_header(header, path)
            fps = check_fps(path, header["fps"], "the header's 'fps'")
            arrays = {n[:-4]: read_npy(zf, n, path, MotionError, frames=n != "betas.npy") for n in npy_members(zf)
                      if n in ("quats.npy", "trans.npy", "betas.npy")}
        for name in ("quats", "trans"):
            if name not in arrays:
                raise MotionError(f"{path}: missing array {name!r}")
        try:
            return cls(torch.from_numpy(arrays["quats"]), torch.from_numpy(arrays["trans"]), fps,
                       betas=torch.from_numpy(arrays["betas"]) if "betas" in arrays else None,
                       meta=header.get("meta") or {})
        except MotionError as exc:
            raise MotionError(f"{path}: {exc}") from exc


def _check_header(header: Any, path: Path) -> None:
    if not isinstance(header, dict):
        kind = {list: "list", str: "string", float: "number", int: "number", bool: "boolean"}.get(type(header), "null")
        raise MotionError(f"{path}: the header is a JSON {kind}, expected an object with format, version, fps and meta")
    if header.get("format") != "motionclip-motion":
        raise MotionError(f"{path}: header has format {str(header.get('format'))[:60]!r}, expected 'motionclip-motion'")
    version = header.get("version", 0)
    if not isinstance(version, (int, float)) or isinstance(version, bool):
        raise MotionError(f"{path}: the header's 'version' must be a number, got {str(version)[:40]!r}")
    if version > FORMAT_VERSION:
        raise MotionError(f"{path}: written by a newer version (format {version:g}); upgrade motionclip")
    if "fps" not in header:
        raise MotionError(f"{path}: the header has no 'fps'; a .motion file records its frame rate")
    if not isinstance(header.get("meta") or {}, dict):
        raise MotionError(f"{path}: the header's 'meta' must be a JSON object, got {type(header['meta']).__name__}")


def facing_from_joints(joints: Tensor) -> Tensor:
    """Facing direction on the floor [..., 3] from SMPL joints [..., 24, 3]; +Z in the rest pose."""
    left = joints[..., 1, :] - joints[..., 2, :]  # R_Hip -> L_Hip (joints 1, 2), +X at rest
    up = torch.tensor([0.0, 1.0, 0.0], dtype=joints.dtype)
    fwd = torch.cross(left, up.expand_as(left), dim=-1)  # +X x +Y = +Z
    fwd = fwd * torch.tensor([1.0, 0.0, 1.0], dtype=joints.dtype)
    return fwd / fwd.norm(dim=-1, keepdim=True).clamp(min=1e-8)
