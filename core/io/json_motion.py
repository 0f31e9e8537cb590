"""Our JSON motion: joint names, parents, rest offsets, fps, per-frame quaternions, root translation.

The same shape the local server answers with (the protocol's MotionData), so a generated clip can
be saved and re-read: `motion_to_data` / `data_to_motion` convert between a Motion and the wire
type, `motion_to_dict` / `dict_to_motion` between a Motion and the JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import MotionClipError
from ..files import atomic_write_text
from ..motion import Motion
from ..protocol import MOTION_FORMAT, MotionData
from ..skeleton import JOINT_NAMES, PARENTS, Skeleton, neutral_skeleton
from .limits import check_count, check_fps

FORMAT = MOTION_FORMAT


class JsonMotionError(MotionClipError):
    pass


def _rounded(t: torch.Tensor, digits: int) -> list:
    """Nested lists of the values rounded to `digits` decimals (in float64, so 0.1 prints as 0.1)."""
    scale = 10.0 ** digits
    return (torch.round(t.double() * scale) / scale).tolist()


def motion_to_data(motion: Motion, skeleton: Skeleton | None = None, digits: int = 6) -> MotionData:
    """A Motion as the wire type (values rounded to `digits` decimals, about 1 um / 1e-6 rad)."""
    skeleton = skeleton or neutral_skeleton()
    return MotionData(fps=motion.fps, rotations=_rounded(motion.quats, digits), trans=_rounded(motion.trans, digits),
                      rest_offsets=_rounded(skeleton.offsets, digits), meta=dict(motion.meta))


def data_to_motion(data: MotionData, origin: str = "motion") -> Motion:
    """The wire type (already validated by MotionData.from_json) as a Motion; quaternions are normalised.
    The readers' limits apply here too (frame rate, frames)."""
    fps = check_fps(origin, data.fps, "'fps'")
    check_count(origin, "the number of frames", len(data.rotations), "MAX_FRAMES")
    try:
        return Motion(torch.tensor(data.rotations, dtype=torch.float32), torch.tensor(data.trans, dtype=torch.float32),
                      fps, meta=dict(data.meta))
    except (TypeError, ValueError) as exc:
        raise JsonMotionError(f"{origin}: {exc}") from None


def motion_to_dict(motion: Motion, skeleton: Skeleton | None = None, digits: int = 6) -> dict[str, Any]:
    return motion_to_data(motion, skeleton, digits).to_json()


def dict_to_motion(d: Any, origin: str = "motion") -> Motion:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise JsonMotionError(f"{origin}: not a motionclip JSON motion (expected \"format\": \"{FORMAT}\")")
    names = d.get("joint_names")
    if names is not None and names != list(JOINT_NAMES):
        raise JsonMotionError(f"{origin}: joint_names must be SMPL's 24 joints in SMPL order")
    for key in ("fps", "rotations", "trans"):
        if key not in d:
            raise JsonMotionError(f"{origin}: missing field {key!r}")
    fps = check_fps(origin, d["fps"], "'fps'")
    for key in ("rotations", "trans"):
        if not isinstance(d[key], list):
            raise JsonMotionError(f"{origin}: '{key}' must be a list of frames, got {type(d[key]).__name__}")
        check_count(origin, f"the number of frames in '{key}'", len(d[key]), "MAX_FRAMES")
    meta = d.get("meta") or {}
    if not isinstance(meta, dict):
        raise JsonMotionError(f"{origin}: 'meta' must be a JSON object, got {type(meta).__name__}")
    try:
        quats = torch.tensor(d["rotations"], dtype=torch.float32)
        trans = torch.tensor(d["trans"], dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise JsonMotionError(f"{origin}: 'rotations' must be [frames][24][4] numbers, 'trans' [frames][3], "
                              f"'fps' a number ({exc})") from None
    try:
        return Motion(quats, trans, fps, meta=meta)
    except MotionClipError as exc:
        raise JsonMotionError(f"{origin}: {exc}") from None


def write_json(motion: Motion, path: str | Path, skeleton: Skeleton | None = None) -> Path:
    atomic_write_text(Path(path), json.dumps(motion_to_dict(motion, skeleton)))
    return Path(path)
