"""The SMPL skeleton: joint names, hierarchy, rest skeletons and forward kinematics.

SMPL is Y-up, metres, and faces +Z in its rest (T) pose; its left side is +X.
A rest skeleton comes either from the user's own SMPL / SMPL-X / SMPL-H model file
(licensed, never shipped; read through `smplx`) or from the built-in neutral skeleton
below, which needs no licensed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .errors import MotionClipError

JOINT_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle",
    "R_Ankle", "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head",
    "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_JOINTS = 24
# Index of each joint's mirror image (left <-> right).
MIRROR: tuple[int, ...] = tuple(
    JOINT_NAMES.index(n.replace("L_", "#").replace("R_", "L_").replace("#", "R_")) for n in JOINT_NAMES
)
# HumanML3D and most text-to-motion tools use the first 22 joints (no hands).
BODY_JOINTS = 22
FOOT_JOINTS = tuple(JOINT_NAMES.index(n) for n in ("L_Ankle", "R_Ankle", "L_Foot", "R_Foot"))

# Built-in neutral rest skeleton (metres, Y up, facing +Z), joint positions in SMPL order.
# Source: the neutral-shape SMPL-X joint calibration shipped with the Apache-2.0 package
# mannequin-x 0.3.0 (assets/smplx_calibration.npz, `joint_rest`), made left/right
# symmetric; L_Hand / R_Hand are placed at the middle-finger knuckle. No SMPL file needed.
NEUTRAL_REST_JOINTS: tuple[tuple[float, float, float], ...] = (
    (0.0000, -0.3514, 0.0120),    # Pelvis
    (0.0607, -0.4497, -0.0116),   # L_Hip
    (-0.0607, -0.4497, -0.0116),  # R_Hip
    (0.0000, -0.2415, -0.0156),   # Spine1
    (0.1102, -0.8203, -0.0247),   # L_Knee
    (-0.1102, -0.8203, -0.0247),  # R_Knee
    (0.0000, -0.1097, -0.0215),   # Spine2
    (0.0807, -1.2272, -0.0507),   # L_Ankle
    (-0.0807, -1.2272, -0.0507),  # R_Ankle
    (0.0000, -0.0574, 0.0069),    # Spine3
    (0.1238, -1.2854, 0.0679),    # L_Foot
    (-0.1238, -1.2854, 0.0679),   # R_Foot
    (0.0000, 0.1077, -0.0247),    # Neck
    (0.0470, 0.0272, -0.0034),    # L_Collar
    (-0.0470, 0.0272, -0.0034),   # R_Collar
    (0.0000, 0.2682, -0.0040),    # Head
    (0.1579, 0.0828, -0.0174),    # L_Shoulder
    (-0.1579, 0.0828, -0.0174),   # R_Shoulder
    (0.4206, 0.0285, -0.0519),    # L_Elbow
    (-0.4206, 0.0285, -0.0519),   # R_Elbow
    (0.6712, 0.0379, -0.0608),    # L_Wrist
    (-0.6712, 0.0379, -0.0608),   # R_Wrist
    (0.7796, 0.0300, -0.0647),    # L_Hand
    (-0.7796, 0.0300, -0.0647),   # R_Hand
)
# Height of the soles in the built-in rest pose (same source): the floor is here.
NEUTRAL_SOLE_Y = -1.3018

SMPL_MODEL_ENV = "MOTIONCLIP_SMPL_MODEL"


@dataclass
class BodyMesh:
    """A skinned body for rendering: rest vertices [V, 3], faces [F, 3], skin weights [V, 24]."""

    vertices: Tensor
    faces: Tensor
    weights: Tensor


@dataclass
class Skeleton:
    """A rest skeleton in SMPL joint order: world rest positions [24, 3] (metres, Y up)."""

    rest_joints: Tensor
    sole_y: float
    name: str = "neutral"
    source: str = "built-in neutral skeleton (mannequin-x SMPL-X calibration, Apache-2.0)"
    mesh: BodyMesh | None = field(default=None, repr=False)

    @property
    def parents(self) -> tuple[int, ...]:
        return PARENTS

    @property
    def offsets(self) -> Tensor:
        """Each joint relative to its parent in the rest pose [24, 3]; the root's is its position."""
        par = torch.tensor([0, *PARENTS[1:]])
        off = self.rest_joints - self.rest_joints[par]
        off[0] = self.rest_joints[0]
        return off

    def forward_kinematics(self, rotmats: Tensor, trans: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return forward_kinematics(rotmats, self.rest_joints.to(rotmats), trans)

    def to(self, *args, **kwargs) -> "Skeleton":
        return Skeleton(self.rest_joints.to(*args, **kwargs), self.sole_y, self.name, self.source, self.mesh)


def forward_kinematics(rotmats: Tensor, rest_joints: Tensor, trans: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Differentiable FK over SMPL's hierarchy.

    rotmats: [..., 24, 3, 3] local rotations; rest_joints: [24, 3]; trans: [..., 3] (SMPL's
    `transl`: the root joint sits at rest_joints[0] + trans).
    Returns joint positions [..., 24, 3] and global rotations [..., 24, 3, 3].
    """
    glob: list[Tensor] = []
    for j, p in enumerate(PARENTS):
        glob.append(rotmats[..., j, :, :] if p < 0 else glob[p] @ rotmats[..., j, :, :])
    G = torch.stack(glob, dim=-3)
    rest = rest_joints.to(rotmats)
    offsets = rest - rest[list(PARENT_OR_SELF)]
    offsets[0] = rest[0]
    pos = chain_positions(G.movedim(-3, 0), offsets, PARENTS).movedim(0, -2)
    return (pos if trans is None else pos + trans[..., None, :]), G


PARENT_OR_SELF = tuple(p if p >= 0 else j for j, p in enumerate(PARENTS))


def chain_positions(glob: Tensor, offsets: Tensor, parents: list[int] | tuple[int, ...]) -> Tensor:
    """Joint positions [J, ..., 3] from global rotations [J, ..., 3, 3] and local offsets
    ([J, 3] or [J, ..., 3]; a root's offset is its position): each joint is its root plus its
    ancestors' rotated offsets, summed in one matrix product instead of a loop."""
    n = len(parents)
    par = [p if p >= 0 else j for j, p in enumerate(parents)]
    off = offsets.reshape((n,) + (1,) * (glob.dim() - 3) + (3,)) if offsets.dim() == 2 else offsets
    parent_rot = torch.index_select(glob, 0, torch.tensor(par, device=glob.device))  # contiguous blocks
    step = (parent_rot @ off[..., None])[..., 0]  # [J, ..., 3] each bone, turned by its parent
    for j, p in enumerate(parents):
        if p < 0:
            step[j] = off[j].expand_as(step[j])
    anc = torch.zeros(n, n, dtype=glob.dtype, device=glob.device)  # anc[j, k] = 1: k is on j's path
    for j in range(n):
        k = j
        while k >= 0:
            anc[j, k] = 1.0
            k = parents[k]
    return (anc @ step.reshape(n, -1)).reshape(step.shape)


def neutral_skeleton(dtype: torch.dtype = torch.float32) -> Skeleton:
    return Skeleton(torch.tensor(NEUTRAL_REST_JOINTS, dtype=dtype), NEUTRAL_SOLE_Y)


class BodyModelError(MotionClipError):
    """A body-model file that is missing or is not an SMPL / SMPL-H / SMPL-X model."""


# Joint indices that make up SMPL's 24 joints, per model type (hands: middle-finger knuckle).
_SMPL_INDEX = {
    "smpl": list(range(24)),
    "smplh": list(range(22)) + [25, 40],
    "smplx": list(range(22)) + [28, 43],
}


def load_skeleton(model_path: str | os.PathLike | None = None, gender: str = "neutral") -> Skeleton:
    """The rest skeleton (and body mesh) of the user's SMPL-family model file, or the built-in one.

    model_path: a model file (SMPL .pkl, SMPL-H / SMPL-X .npz or .pkl) or a folder laid out as
    `smplx.create` expects. Falls back to the environment variable MOTIONCLIP_SMPL_MODEL, then
    to the built-in neutral skeleton.
    """
    if model_path is None:
        model_path = os.environ.get(SMPL_MODEL_ENV) or None
    if model_path is None:
        return neutral_skeleton()
    path = Path(model_path).expanduser()
    if not path.exists():
        raise BodyModelError(
            f"SMPL model not found: {path}. Give the path of your SMPL / SMPL-H / SMPL-X model file "
            f"(e.g. SMPL_NEUTRAL.pkl or SMPLX_NEUTRAL.npz, downloaded from smpl.is.tue.mpg.de / "
            f"smpl-x.is.tue.mpg.de) with --smpl-model or ${SMPL_MODEL_ENV}, or leave both unset "
            f"to use the built-in neutral skeleton."
        )
    model_type = _guess_model_type(path)
    try:
        import smplx  # licensed model files are read through the official package
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BodyModelError(f"reading {path} needs the `smplx` package: pip install 'motionclip[smpl]'") from exc
    try:
        # smplx.create takes a model file or a folder laid out as it expects.
        model = smplx.create(str(path), model_type=model_type, gender=gender, use_pca=False)
    except Exception as exc:  # smplx raises assorted errors for unreadable files
        raise BodyModelError(
            f"{path} could not be read as an {model_type.upper()} model ({type(exc).__name__}: {exc}). "
            f"Expected an SMPL-family model file such as SMPL_NEUTRAL.pkl or SMPLX_NEUTRAL.npz."
        ) from exc
    with torch.no_grad():
        v = model.v_template.detach().to(torch.float32)
        joints = (model.J_regressor.to(torch.float32) @ v)  # [J, 3]
        idx = _SMPL_INDEX[model_type]
        if joints.shape[0] <= max(idx):
            raise BodyModelError(f"{path}: the model has {joints.shape[0]} joints, fewer than an {model_type} model")
        rest = joints[idx].clone()
        weights = model.lbs_weights.detach().to(torch.float32)[:, :]
        # Fold every weight of a joint outside SMPL's 24 into its nearest SMPL ancestor.
        w24 = _fold_weights(weights, model.parents.tolist(), idx)
        faces = torch.as_tensor(model.faces.astype("int64"))
    mesh = BodyMesh(v, faces, w24)
    return Skeleton(rest, float(v[:, 1].min()), name=f"{model_type}-{gender}", source=str(path), mesh=mesh)


def _guess_model_type(path: Path) -> str:
    stem = path.name.lower()
    for kind in ("smplx", "smplh", "smpl"):
        if kind in stem:
            return kind
    if path.is_dir():
        for kind in ("smplx", "smplh", "smpl"):
            if (path / kind).is_dir():
                return kind
    raise BodyModelError(
        f"cannot tell the model type of {path}: its name should contain smpl, smplh or smplx "
        f"(as the official files do, e.g. SMPL_NEUTRAL.pkl, SMPLX_NEUTRAL.npz)."
    )


def _fold_weights(weights: Tensor, parents: list[int], keep: list[int]) -> Tensor:
    out = torch.zeros(weights.shape[0], len(keep), dtype=weights.dtype)
    where = {j: i for i, j in enumerate(keep)}
    for j in range(weights.shape[1]):
        k = j
        while k not in where and k >= 0:
            k = parents[k]
        out[:, where.get(k, 0)] += weights[:, j]
    return out
