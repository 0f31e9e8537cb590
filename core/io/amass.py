"""AMASS-style npz: axis-angle `poses`, `trans`, `mocap_framerate` (Z up, as AMASS ships).

Reads SMPL ([T, 72]), SMPL-H ([T, 156]) and SMPL-X ([T, 165]) poses, keeping the body (SMPL-H
and SMPL-X hands and face are dropped; SMPL's two hand joints then stay at rest), and the
newer split layout (`root_orient`, `pose_body`). Writes SMPL poses [T, 72].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import rotations as R
from ..errors import MotionClipError
from ..files import atomic_write_bytes
from ..motion import Motion
from ..skeleton import Skeleton, neutral_skeleton
from .limits import check_count, check_fps, npy_members, open_zip, read_npy


class AmassError(MotionClipError):
    pass


# Z up -> Y up: a -90 degree turn about X.
Z_TO_Y = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


def _turn(motion: Motion, turn: torch.Tensor, skeleton: Skeleton) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate a whole motion about the world origin: root orientation and translation."""
    q = motion.quats.clone()
    q[:, 0] = R.quat_mul(R.matrix_to_quat(turn)[None], q[:, 0])
    j0 = skeleton.rest_joints[0]
    trans = (j0 + motion.trans) @ turn.T - j0
    return q, trans


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The npz's arrays a motion needs, each checked (size, dtype, shape) before its data is read."""
    wanted = ("poses", "root_orient", "pose_body", "trans", "mocap_framerate", "mocap_frame_rate", "fps", "betas")
    with open_zip(path, AmassError, "npz file") as zf:
        members = {n[:-4]: n for n in npy_members(zf)}
        return {k: read_npy(zf, members[k], path, AmassError, frames=k in wanted[:4]) for k in wanted if k in members}


def read_amass(path: str | Path, up: str = "z", skeleton: Skeleton | None = None) -> Motion:
    path = Path(path)
    skeleton = skeleton or neutral_skeleton()
    data = _read_arrays(path)
    keys = set(data)
    if "poses" in keys:
        poses = data["poses"]
    elif {"root_orient", "pose_body"} <= keys:
        if data["root_orient"].ndim != 2 or data["pose_body"].shape[:-1] != data["root_orient"].shape[:-1]:
            raise AmassError(f"{path}: 'root_orient' {list(data['root_orient'].shape)} and 'pose_body' "
                             f"{list(data['pose_body'].shape)} must both be [frames, values]")
        poses = np.concatenate([data["root_orient"], data["pose_body"]], axis=-1)
    else:
        raise AmassError(f"{path}: no 'poses' array (nor 'root_orient' + 'pose_body'); found {sorted(keys)}. "
                         f"An AMASS-style npz needs poses [frames, 72|156|165] in axis-angle")
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] % 3 or poses.shape[1] < 66:
        raise AmassError(f"{path}: 'poses' has shape {list(poses.shape)}; expected [frames, 72] (SMPL), "
                         f"[frames, 156] (SMPL-H) or [frames, 165] (SMPL-X)")
    T = poses.shape[0]
    if T == 0:
        raise AmassError(f"{path}: 'poses' has no frames")
    check_count(path, "the number of frames", T, "MAX_FRAMES")
    if "trans" not in keys:
        raise AmassError(f"{path}: no 'trans' array [frames, 3]")
    trans = np.asarray(data["trans"], dtype=np.float64)
    if trans.shape != (T, 3):
        raise AmassError(f"{path}: 'trans' has shape {list(trans.shape)}, expected [{T}, 3] to match 'poses'")
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate", "fps") if k in keys), None)
    if fps_key is None:
        raise AmassError(f"{path}: no frame rate ('mocap_framerate'); add it to the file")
    if data[fps_key].size != 1:
        raise AmassError(f"{path}: '{fps_key}' must be one number, got an array of shape {list(data[fps_key].shape)}")
    fps = check_fps(path, float(data[fps_key].reshape(-1)[0]), f"'{fps_key}'")
    for name, arr in (("poses", poses), ("trans", trans)):
        if not np.isfinite(arr).all():
            raise AmassError(f"{path}: '{name}' has NaN or infinite values (first at frame {int(np.argwhere(~np.isfinite(arr))[0, 0])})")
    aa = np.zeros((T, 24, 3))
    n = 24 if poses.shape[1] == 72 else 22
    aa[:, :n] = poses[:, : n * 3].reshape(T, n, 3)
    betas = np.asarray(data["betas"], dtype=np.float64).reshape(-1) if "betas" in keys else None
    if betas is not None and (betas.size > 300 or not np.isfinite(betas).all()):
        raise AmassError(f"{path}: 'betas' must be at most 300 finite numbers (SMPL: 10, SMPL-X: up to 300); "
                         f"got {betas.size} values")
    try:
        motion = Motion.from_axis_angle(torch.from_numpy(aa), torch.from_numpy(trans), fps,
                                        betas=None if betas is None else torch.from_numpy(betas),
                                        meta={"source": str(path), "source_fps": fps})
    except MotionClipError as exc:
        raise AmassError(f"{path}: {exc}") from None
    if up == "z":
        motion.quats, motion.trans = _turn(motion, Z_TO_Y, skeleton)
    elif up != "y":
        raise AmassError(f"up axis must be 'z' (AMASS) or 'y', got {up!r}")
    return motion


def write_amass(motion: Motion, path: str | Path, up: str = "z", skeleton: Skeleton | None = None) -> Path:
    skeleton = skeleton or neutral_skeleton()
    quats, trans = (motion.quats, motion.trans) if up == "y" else _turn(motion, Z_TO_Y.T, skeleton)
    aa = R.quat_to_axis_angle(quats).reshape(motion.num_frames, 72)
    betas = motion.betas.numpy() if motion.betas is not None else np.zeros(10, dtype=np.float32)
    import io
    buf = io.BytesIO()
    np.savez(buf, poses=aa.numpy().astype(np.float32), trans=trans.numpy().astype(np.float32),
             mocap_framerate=np.float64(motion.fps), betas=betas, gender=np.str_("neutral"),
             surface_model_type=np.str_("smpl"))
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
