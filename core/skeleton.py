"""The SMPL skeleton: joint names, hierarchy, rest skeletons and forward kinematics.

SMPL is Y-up, metres, and faces +Z in its rest (T) pose; its left side is +X.
A rest skeleton comes either from the user's own SMPL / SMPL-X / SMPL-H model file
(licensed, never shipped; read without unpickling code by core.safe_pickle, then built by
`smplx`) or from the built-in neutral skeleton below, which needs no licensed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .errors import MotionClipError
# The joint order and parents are the wire protocol's (one definition, standard library only).
from .protocol import JOINT_NAMES, NUM_JOINTS, PARENTS

# Index of each joint's mirror image (left <-> right).
MIRROR: tuple[int, ...] = tuple(
    JOINT_NAMES.index(n.replace("L_", "#").replace("R_", "L_").replace("#", "R_")) for n in JOINT_NAMES
)
# HumanML3D and most text-to-motion tools use the first 22 joints (no hands).
BODY_JOINTS = 22

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


_MODEL_TYPES = ("smpl", "smplh", "smplx")  # a folder is searched in this order
_TYPE_LABEL = {"smpl": "SMPL", "smplh": "SMPL-H", "smplx": "SMPL-X"}
_EXAMPLE_FILE = {"smpl": "SMPL_NEUTRAL.pkl", "smplh": "SMPLH_MALE.pkl", "smplx": "SMPLX_NEUTRAL.npz"}
_GENDERS = ("neutral", "male", "female")
# How many joints each model type has (SMPL-H: 22 body + 2 x 15 hand; SMPL-X adds jaw and eyes).
_NUM_MODEL_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
# Joint indices that make up SMPL's 24 joints, per model type (hands: middle-finger knuckle).
_SMPL_INDEX = {
    "smpl": list(range(24)),
    "smplh": list(range(22)) + [25, 40],
    "smplx": list(range(22)) + [28, 43],
}
# A model joint outside SMPL's 24 whose nearest SMPL ancestor is a wrist is a finger: it skins to
# SMPL's hand joint (L_Hand / R_Hand), as SMPL's own fingers do, not to the wrist.
_WRIST_TO_HAND = {20: 22, 21: 23}
_HAND_PCA_KEYS = ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr")


def load_skeleton(model_path: str | os.PathLike | None = None, gender: str = "neutral") -> Skeleton:
    """The rest skeleton (and body mesh) of the user's SMPL-family model file, or the built-in one.

    model_path: a model file or a folder; None: the environment variable MOTIONCLIP_SMPL_MODEL,
    and if that is unset or empty, the built-in neutral skeleton.
    A file (SMPL .pkl / .npz, SMPL-H .pkl / .npz, SMPL-X .npz / .pkl) is read without running
    code (core.safe_pickle refuses a pickle that names anything but arrays) and built by `smplx`;
    its type comes from its name (smpl / smplh / smplx, or SMPL's official basicmodel_*), else
    from its folders' names (AMASS's smplh/<gender>/model.npz); its gender likewise, else `gender`.
    A folder is searched for `<TYPE>_<GENDER>.npz` / `.pkl` (any case), in it and in its smpl /
    smplh / smplx subfolders (the layout `smplx.create` expects), and for `<gender>/model.npz`;
    `gender` picks the file; SMPL is taken before SMPL-H before SMPL-X.
    Raises BodyModelError, naming the file and what to do, for anything that is not such a model.
    """
    from_env = False
    if model_path is None:
        model_path = os.environ.get(SMPL_MODEL_ENV) or None
        from_env = model_path is not None
    if model_path is None:
        return neutral_skeleton()
    given = f" (from ${SMPL_MODEL_ENV})" if from_env else ""
    path = Path(model_path).expanduser()
    want_gender = str(gender).strip().lower()
    if want_gender not in _GENDERS:
        raise BodyModelError(f"unknown SMPL gender {gender!r} for {path}: use neutral, male or female")
    if not path.exists():
        raise BodyModelError(
            f"SMPL model not found: {path}{given}. Give the path of your SMPL / SMPL-H / SMPL-X model file "
            f"(e.g. SMPL_NEUTRAL.pkl or SMPLX_NEUTRAL.npz, downloaded from smpl.is.tue.mpg.de / "
            f"smpl-x.is.tue.mpg.de) with --smpl-model or ${SMPL_MODEL_ENV}, or leave both unset "
            f"to use the built-in neutral skeleton."
        )
    if path.is_dir():
        file, model_type = _find_model_file(path, want_gender)
    else:
        file, model_type = path, _guess_model_type(path)
    file_gender = _guess_gender(file)
    if file_gender and want_gender != "neutral" and file_gender != want_gender:
        raise BodyModelError(
            f"{file} is a {file_gender} model, but gender {want_gender!r} was asked for: give the "
            f"{want_gender} model file, or its folder, or leave the gender unset."
        )
    gender = file_gender or want_gender
    try:
        import smplx  # the official package builds the model from the file's arrays
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BodyModelError(f"reading {file} needs the `smplx` package: pip install 'motionclip[smpl]'") from exc
    model = _build_model(smplx, file, model_type, gender)
    label = _TYPE_LABEL[model_type]
    with torch.no_grad():
        v = model.v_template.detach().to(torch.float32).clone()  # [V, 3]
        regressor = model.J_regressor.detach().to(torch.float32)  # [J, V]
        weights = model.lbs_weights.detach().to(torch.float32)  # [V, J]
        parents = [int(p) for p in model.parents.tolist()]
        faces = torch.as_tensor(model.faces.astype("int64"))
        nj, nv = _NUM_MODEL_JOINTS[model_type], v.shape[0]
        problem = None
        if v.dim() != 2 or v.shape[1] != 3:
            problem = f"its v_template has shape {list(v.shape)}, not [vertices, 3]"
        elif regressor.shape[0] != nj:
            problem = f"it has {regressor.shape[0]} joints (J_regressor rows); an {label} model has {nj}"
        elif regressor.shape[1] != nv:
            problem = f"its J_regressor has {regressor.shape[1]} columns for {nv} vertices"
        elif tuple(weights.shape) != (nv, nj):
            problem = f"its skin weights have shape {list(weights.shape)}, not [{nv}, {nj}]"
        elif len(parents) != nj or any(not 0 <= p < j for j, p in enumerate(parents) if j):
            problem = "its kintree_table is not a joint tree in SMPL order (each parent before its child)"
        elif faces.dim() != 2 or faces.shape[1] != 3 or faces.numel() == 0 or int(faces.min()) < 0 or int(faces.max()) >= nv:
            problem = f"its faces (f, shape {list(faces.shape)}) are not triangles over its {nv} vertices"
        if problem:
            raise BodyModelError(
                f"{file} is not a usable {label} model: {problem}. Use the official {label} file "
                f"(e.g. {_EXAMPLE_FILE[model_type]}); the model type is taken from the file's name."
            )
        idx = _SMPL_INDEX[model_type]
        rest = (regressor @ v)[idx].clone()  # [24, 3]
        # Fold every weight of a joint outside SMPL's 24 into the SMPL joint that stands for it.
        w24 = _fold_weights(weights, parents, idx)
    mesh = BodyMesh(v, faces, w24)
    return Skeleton(rest, float(v[:, 1].min()), name=f"{model_type}-{gender}", source=str(file), mesh=mesh)


def _build_model(smplx, file: Path, model_type: str, gender: str):
    """An smplx body model read from `file` (its buffers are all load_skeleton needs).

    The file is read here, never by smplx (which would unpickle it): pickles and object arrays go
    through core.safe_pickle's restricted unpickler, and smplx gets plain arrays."""
    import contextlib
    import io

    from .safe_pickle import UnsafePickleError

    label = _TYPE_LABEL[model_type]
    suffix = file.suffix.lower()
    if suffix not in (".pkl", ".npz"):
        raise BodyModelError(
            f"{file} is not an {label} model file: expected a .pkl or .npz file "
            f"(e.g. {_EXAMPLE_FILE[model_type]}), not {suffix or 'a file without an extension'}."
        )
    try:
        data = _read_model_data(file)
        # smplx prints a warning for models with few shape coefficients (every SMPL file); hush it.
        with contextlib.redirect_stdout(io.StringIO()):
            if model_type == "smplx":
                return _smplx_from_arrays(smplx, file, data, gender)
            # smplx reads SMPL only from a pickle and SMPL-H only with hand PCA; hand smplx the
            # arrays, so an .npz SMPL file and AMASS's SMPL+H work too.
            from smplx.utils import Struct

            if model_type == "smpl":
                return smplx.SMPL(str(file), data_struct=Struct(**data), gender=gender)
            if not any(k in data for k in _HAND_PCA_KEYS):  # AMASS "extended SMPL+H": no hand PCA
                data.update(hands_componentsl=_zeros(45, 45), hands_componentsr=_zeros(45, 45),
                            hands_meanl=_zeros(45), hands_meanr=_zeros(45))
            return smplx.SMPLH(str(file), data_struct=Struct(**data), gender=gender, use_pca=False)
    except UnsafePickleError as exc:
        raise BodyModelError(f"{exc} (while loading it as an {label} model)") from None
    except AttributeError as exc:
        # smplx reads the file's arrays as attributes of a Struct: a missing one is a missing key.
        key = getattr(exc, "name", None)
        if "Struct" in str(exc) and key:
            raise BodyModelError(
                f"{file} is not a complete {label} model: it has no {key!r} entry. Use the official "
                f"{label} file (e.g. {_EXAMPLE_FILE[model_type]}); the model type is taken from the "
                f"file's name, so check that the name says smpl, smplh or smplx correctly."
            ) from exc
        raise _unreadable(file, model_type, exc) from exc
    except Exception as exc:  # smplx / numpy / zipfile raise assorted errors for unreadable files
        raise _unreadable(file, model_type, exc) from exc


def _smplx_from_arrays(smplx, file: Path, data: dict, gender: str):
    """smplx.SMPLX reads only a file, with np.load(allow_pickle=True). A plain-array .npz (as
    convert-smpl writes) holds nothing it could unpickle, so smplx reads it directly; for anything
    else (a pickle, an .npz with object arrays) it reads a plain-array copy of `data`."""
    import tempfile

    import numpy as np

    from .safe_pickle import save_plain_npz

    with open(file, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip and all(isinstance(v, np.ndarray) and not v.dtype.hasobject for v in data.values()):
        return smplx.SMPLX(str(file), ext="npz", gender=gender, use_pca=False)
    with tempfile.TemporaryDirectory(prefix="motionclip-smplx-") as tmp:
        plain = Path(tmp) / f"SMPLX_{gender.upper()}.npz"
        save_plain_npz(plain, data)
        return smplx.SMPLX(str(plain), ext="npz", gender=gender, use_pca=False)


def _unreadable(file: Path, model_type: str, exc: Exception) -> BodyModelError:
    label = _TYPE_LABEL[model_type]
    return BodyModelError(
        f"{file} could not be read as an {label} model ({type(exc).__name__}: {exc}). Expected an "
        f"official {label} model file such as {_EXAMPLE_FILE[model_type]} (the type is taken from "
        f"the file's name); if it is one, it may be damaged: download it again."
    )


def _read_model_data(file: Path) -> dict:
    """The named arrays of an SMPL-family .pkl or .npz file, read without running code
    (core.safe_pickle: chumpy arrays and scipy.sparse matrices come back as numpy arrays)."""
    from .safe_pickle import read_model_arrays

    data = read_model_arrays(file)
    if not isinstance(data, dict):
        raise TypeError(f"the file holds a {type(data).__name__}, not a model's named arrays")
    return {str(k): v for k, v in data.items()}


def _zeros(*shape: int):
    import numpy as np

    return np.zeros(shape, dtype=np.float32)


def _guess_model_type(path: Path) -> str:
    name = path.name.lower()
    for kind in ("smplx", "smplh", "smpl"):
        if kind in name:
            return kind
    if name.startswith("basicmodel"):  # SMPL's official files: basicModel_neutral_lbs_10_207_0_v1.0.0.pkl
        return "smpl"
    for folder in list(path.parents)[:2]:  # AMASS's layout: smplh/<gender>/model.npz
        if folder.name.lower() in _MODEL_TYPES:
            return folder.name.lower()
    raise BodyModelError(
        f"cannot tell the model type of {path}: its name should contain smpl, smplh or smplx "
        f"(as the official files do, e.g. SMPL_NEUTRAL.pkl, SMPLH_MALE.pkl, SMPLX_NEUTRAL.npz). "
        f"Rename it, or put it in a folder named smpl, smplh or smplx."
    )


def _guess_gender(path: Path) -> str | None:
    """The gender a model file's name (or, for AMASS's <gender>/model.npz, its folder) says."""
    import re

    name = path.name.lower()
    words = set(re.split(r"[^a-z0-9]+", name))
    if name.startswith("basicmodel"):  # SMPL's official basicModel_f_lbs_..., basicmodel_m_lbs_...
        words |= {"female"} if "f" in words else {"male"} if "m" in words else set()
    found = [g for g in _GENDERS if g in words]
    if len(found) == 1:
        return found[0]
    if not found and path.parent.name.lower() in _GENDERS:
        return path.parent.name.lower()
    return None


def _find_model_file(folder: Path, gender: str) -> tuple[Path, str]:
    """The `gender` model file in a folder laid out as `smplx.create` (or AMASS) expects."""
    kinds = [folder.name.lower()] if folder.name.lower() in _MODEL_TYPES else list(_MODEL_TYPES)
    searched: list[str] = []
    for kind in kinds:
        places = [folder] if folder.name.lower() == kind else [folder, folder / kind]
        names = [f"{kind}_{gender}.npz", f"{kind}_{gender}.pkl"]
        for place in places:
            if not place.is_dir():
                continue
            files = {p.name.lower(): p for p in sorted(place.iterdir()) if p.is_file()}
            for n in names:
                if n in files:
                    return files[n], kind
            if kind == "smpl":  # SMPL's official names: basicmodel_{neutral,m,f}_lbs_10_207_0_v1.x.pkl
                tag = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
                for n, p in files.items():
                    if n.startswith(f"basicmodel_{tag}_") and n.endswith(".pkl"):
                        return p, kind
            if place.name.lower() == kind and (place / gender / "model.npz").is_file():  # AMASS
                return place / gender / "model.npz", kind
        searched.append(f"{kind.upper()}_{gender.upper()}.npz/.pkl")
    raise BodyModelError(
        f"no {gender} SMPL-family model in the folder {folder}: looked for {', '.join(searched)} "
        f"(any case) in it and in its {', '.join(kinds)} subfolder(s). Put the model file there "
        f"(e.g. {folder / kinds[-1] / (kinds[-1].upper() + '_' + gender.upper() + '.npz')}), give the file "
        f"itself, or choose another gender."
    )


def _fold_weights(weights: Tensor, parents: list[int], keep: list[int],
                  redirect: dict[int, int] | None = None) -> Tensor:
    """Skin weights [V, J] over a model's J joints -> [V, len(keep)] over the kept joints `keep`.

    Each other joint's weight goes to its nearest kept ancestor's column c, or to redirect[c]
    where given (by default a finger, whose nearest SMPL ancestor is a wrist, goes to SMPL's hand
    joint). Each vertex's total weight is unchanged."""
    if redirect is None:
        redirect = _WRIST_TO_HAND if len(keep) == NUM_JOINTS else {}
    where = {j: i for i, j in enumerate(keep)}
    column = []
    for j in range(weights.shape[1]):
        k = j
        while k not in where and k >= 0:
            k = parents[k]
        c = where.get(k, 0)
        column.append(c if j in where else redirect.get(c, c))
    out = torch.zeros(weights.shape[0], len(keep), dtype=weights.dtype, device=weights.device)
    return out.index_add_(1, torch.tensor(column, device=weights.device), weights)
