"""DeepMimic motion clips (humanoid3d_*.txt / .json, as shipped in the pybullet wheel).

A clip is JSON: {"Loop": ..., "Frames": [[dt, root xyz (3), root wxyz (4), chest (4), neck (4),
right hip (4), right knee (1), right ankle (4), right shoulder (4), right elbow (1), left hip (4),
left knee (1), left ankle (4), left shoulder (4), left elbow (1)], ...]}: 44 numbers a frame,
quaternions (w, x, y, z), knees and elbows as one angle about their joint's Z axis. Y up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .. import rotations as R
from ..errors import MotionClipError
from .limits import check_count, check_fps, read_json_file
from .source import SourceClip, SourceSkeleton


class DeepMimicError(MotionClipError):
    pass


# The humanoid3d character (pybullet_data/humanoid/humanoid.urdf): joint, parent, offset.
_JOINTS = [
    ("root", -1, (0.0, 0.0, 0.0)),
    ("chest", 0, (0.0, 0.944604, 0.0)),
    ("neck", 1, (0.0, 0.895576, 0.0)),
    ("right_hip", 0, (0.0, 0.0, 0.339548)),
    ("right_knee", 3, (0.0, -1.686184, 0.0)),
    ("right_ankle", 4, (0.0, -1.639480, 0.0)),
    ("right_shoulder", 1, (-0.0962, 0.974, 0.73244)),
    ("right_elbow", 6, (0.0, -1.099152, 0.0)),
    ("right_wrist", 7, (0.0, -1.035788, 0.0)),
    ("left_hip", 0, (0.0, 0.0, -0.339548)),
    ("left_knee", 9, (0.0, -1.686184, 0.0)),
    ("left_ankle", 10, (0.0, -1.639480, 0.0)),
    ("left_shoulder", 1, (-0.0962, 0.974, -0.73244)),
    ("left_elbow", 12, (0.0, -1.099152, 0.0)),
    ("left_wrist", 13, (0.0, -1.035788, 0.0)),
]
# Layout of one frame after dt and root position: (joint, number of values).
_LAYOUT = [("root", 4), ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
           ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
           ("left_shoulder", 4), ("left_elbow", 1)]
FRAME_SIZE = 1 + 3 + sum(n for _, n in _LAYOUT)  # 44


def is_deepmimic(data: object) -> bool:
    return isinstance(data, dict) and "Frames" in data and "format" not in data


def read_deepmimic(path: str | Path, data: dict | None = None) -> SourceClip:
    path = Path(path)
    if data is None:
        data = read_json_file(path, DeepMimicError)
    frames = data.get("Frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DeepMimicError(f"{path}: field 'Frames' must be a non-empty list of frames")
    check_count(path, "the number of frames", len(frames), "MAX_FRAMES")
    for i, fr in enumerate(frames):
        if not isinstance(fr, list) or len(fr) != FRAME_SIZE:
            n = len(fr) if isinstance(fr, list) else type(fr).__name__
            raise DeepMimicError(f"{path}: Frames[{i}] has {n} values; a DeepMimic humanoid3d frame has {FRAME_SIZE}")
    try:
        arr = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepMimicError(f"{path}: 'Frames' holds something that is not a number") from None
    if not np.isfinite(arr).all():
        r = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DeepMimicError(f"{path}: Frames[{r}] has NaN or infinite values")
    T = arr.shape[0]
    names = [n for n, _, _ in _JOINTS]
    rot = torch.eye(3, dtype=torch.float64).repeat(len(names), T, 1, 1)  # joint-major [J, T, 3, 3]
    col = 4
    for joint, n in _LAYOUT:
        v = torch.from_numpy(arr[:, col:col + n])
        j = names.index(joint)
        if n == 4:
            rot[j] = R.quat_to_matrix(v)
        else:  # revolute about the joint's Z axis
            rot[j] = R.axis_angle_to_matrix(torch.nn.functional.pad(v, (2, 0)))
        col += n
    offsets = np.array([o for _, _, o in _JOINTS])
    local_pos = torch.from_numpy(offsets)[:, None, :].repeat(1, T, 1)  # [J, T, 3]
    local_pos[0] = torch.from_numpy(arr[:, 1:4])
    skel = SourceSkeleton(names=names, parents=[p for _, p, _ in _JOINTS], offsets=offsets)
    dts = arr[:-1, 0] if T > 1 else arr[:, 0]
    dts = dts[dts > 0]
    if dts.size == 0:
        raise DeepMimicError(f"{path}: every frame has a duration (first value) of 0; cannot tell the frame rate")
    fps = check_fps(path, 1.0 / float(np.median(dts)), "the frame rate (from the frame durations)")
    if abs(fps - round(fps)) < 0.05:
        fps = float(round(fps))
    times = np.concatenate([[0.0], np.cumsum(arr[:-1, 0])])
    if (arr[:, 0] < 0).any():
        raise DeepMimicError(f"{path}: Frames[{int(np.argmax(arr[:, 0] < 0))}] has a negative duration (first value)")
    check_count(path, f"the number of frames at {fps:g} fps over {times[-1]:g} s", int(times[-1] * fps) + 1,
                "MAX_FRAMES")
    clip = SourceClip(skeleton=skel, local_pos=local_pos.to(torch.float32), fps=fps, rotmats=rot.to(torch.float32),
                      path=str(path), meta={"loop": data.get("Loop"), "frame_times": times.tolist()})
    return clip


def needs_retiming(clip: SourceClip) -> bool:
    times = np.asarray(clip.meta.get("frame_times", []))
    if times.size < 2:
        return False
    return bool(np.abs(times - np.arange(times.size) / clip.fps).max() > 0.25 / clip.fps)


def uniform_positions(clip: SourceClip) -> torch.Tensor:
    """Fractional frame positions that sample the clip at its uniform rate."""
    times = np.asarray(clip.meta["frame_times"])
    n = int(math.floor(times[-1] * clip.fps + 1e-6)) + 1
    return torch.from_numpy(np.interp(np.arange(n) / clip.fps, times, np.arange(times.size)))
