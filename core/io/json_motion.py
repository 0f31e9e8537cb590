"""Our JSON motion: joint names, parents, rest offsets, fps, per-frame quaternions, root translation.

The same shape the local server answers with, so a generated clip can be saved and re-read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import MotionClipError
from ..motion import Motion, atomic_write_text
from ..protocol import MOTION_FORMAT
from ..skeleton import JOINT_NAMES, PARENTS, Skeleton, neutral_skeleton

FORMAT = MOTION_FORMAT


class JsonMotionError(MotionClipError):
    pass


def motion_to_dict(motion: Motion, skeleton: Skeleton | None = None, digits: int = 6) -> dict[str, Any]:
    skeleton = skeleton or neutral_skeleton()
    return {
        "format": FORMAT,
        "version": 1,
        "fps": motion.fps,
        "joint_names": list(JOINT_NAMES),
        "parents": list(PARENTS),
        "rest_offsets": [[round(v, digits) for v in row] for row in skeleton.offsets.tolist()],
        "rotations": [[[round(v, digits) for v in q] for q in frame] for frame in motion.quats.tolist()],
        "trans": [[round(v, digits) for v in t] for t in motion.trans.tolist()],
        "meta": motion.meta,
    }


def dict_to_motion(d: Any, origin: str = "motion") -> Motion:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise JsonMotionError(f"{origin}: not a motionclip JSON motion (expected \"format\": \"{FORMAT}\")")
    names = d.get("joint_names")
    if names is not None and list(names) != list(JOINT_NAMES):
        raise JsonMotionError(f"{origin}: joint_names must be SMPL's 24 joints in SMPL order")
    for key in ("fps", "rotations", "trans"):
        if key not in d:
            raise JsonMotionError(f"{origin}: missing field {key!r}")
    try:
        quats = torch.tensor(d["rotations"], dtype=torch.float32)
        trans = torch.tensor(d["trans"], dtype=torch.float32)
        fps = float(d["fps"])
    except (TypeError, ValueError) as exc:
        raise JsonMotionError(f"{origin}: 'rotations' must be [frames][24][4] numbers, 'trans' [frames][3], "
                              f"'fps' a number ({exc})") from None
    try:
        return Motion(quats, trans, fps, meta=d.get("meta") or {})
    except MotionClipError as exc:
        raise JsonMotionError(f"{origin}: {exc}") from None


def write_json(motion: Motion, path: str | Path, skeleton: Skeleton | None = None) -> Path:
    atomic_write_text(Path(path), json.dumps(motion_to_dict(motion, skeleton)))
    return Path(path)
