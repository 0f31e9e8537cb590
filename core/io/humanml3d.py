"""HumanML3D-style joint positions: [T, 22, 3] at 20 fps, Y up, facing +Z at the start, floor at 0."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..motion import Motion
from ..skeleton import BODY_JOINTS, Skeleton, neutral_skeleton

HUMANML3D_FPS = 20.0


def humanml3d_joints(motion: Motion, skeleton: Skeleton | None = None) -> np.ndarray:
    skeleton = skeleton or neutral_skeleton()
    m = motion.resample(HUMANML3D_FPS).canonicalize(skeleton)
    return m.joints(skeleton)[:, :BODY_JOINTS].numpy().astype(np.float32)


def write_humanml3d(motion: Motion, path: str | Path, skeleton: Skeleton | None = None) -> Path:
    buf = io.BytesIO()
    np.save(buf, humanml3d_joints(motion, skeleton), allow_pickle=False)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
