"""Retargeting a source skeleton's motion onto SMPL's 24 joints.

Method (rotation transfer through a reference pose):
1. Bring the source into SMPL's world: Y up (a Z-up source is turned by -90 deg about X).
2. Pick a reference pose of the source with no limb pointing opposite to SMPL's T-pose and one
   fixed for every clip of a rig: the rest pose for T-posed rigs, a standing pose given in the
   preset for rigs whose rest pose lays all bones along one axis (Bandai-Namco, LAFAN1), or,
   for unknown rigs of that kind, the clip's first frame snapped to the axis grid.
3. For each mapped SMPL joint, an alignment A_j taking SMPL's rest bone directions onto the
   source's reference bone directions: Kabsch over all child bones where there are two or
   more (pelvis, chest), otherwise the smallest swing on top of the parent's alignment, so
   bone twist is inherited from the parent rather than invented.
4. Per frame, SMPL's global rotation is G_j(t) = S_m(t) Sref_m^-1 A_j, with S_m the source
   joint's global rotation; unmapped SMPL joints keep a zero local rotation. Local rotations
   follow from the hierarchy. Bone directions of mapped joints, and twist, carry over exactly.
5. The root translation is the source hips' trajectory scaled by SMPL's leg length over the
   source's (so any unit - cm, m, inches - works, and feet do not slide).

Each retarget reports what it measured: the mean / max angle between SMPL bones and the
source bones they follow (limbs and torso apart), and the facing error, in degrees.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import rotations as R
from ..motion import Motion, facing_from_joints
from ..skeleton import PARENT_OR_SELF, JOINT_NAMES, PARENTS, Skeleton, chain_positions, neutral_skeleton
from ..errors import MotionClipError, read_json
from .source import SourceClip, ancestors_closure, source_fk

REQUIRED = ("Pelvis", "L_Hip", "R_Hip")


class RetargetError(MotionClipError):
    """A source skeleton that cannot be mapped onto SMPL."""


@dataclass
class Mapping:
    """Which source joint drives each SMPL joint. Candidates are tried in order."""

    name: str
    joints: dict[str, list[str]]
    up: str = "auto"  # "y", "z" or "auto"
    reference: str = "rest"  # "rest", "pose" (reference_pose below) or "snap_first_frame"
    reference_pose: dict[str, list[float]] = field(default_factory=dict)  # joint -> Euler XYZ degrees
    description: str = ""
    min_match: float = 0.8  # share of the preset's joints a skeleton must have for auto-detection

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "mapping") -> "Mapping":
        if not isinstance(d, dict) or not isinstance(d.get("joints"), dict):
            raise RetargetError(f"{origin}: a mapping is a JSON object with a 'joints' object "
                                f"(SMPL joint name -> source joint name or list of names)")
        joints: dict[str, list[str]] = {}
        for k, v in d["joints"].items():
            if k not in JOINT_NAMES:
                raise RetargetError(f"{origin}: {k!r} is not an SMPL joint; use one of {', '.join(JOINT_NAMES)}")
            cands = [v] if isinstance(v, str) else list(v)
            if not cands or not all(isinstance(c, str) for c in cands):
                raise RetargetError(f"{origin}: joint {k!r} must map to a name or a list of names")
            joints[k] = cands
        missing = [k for k in REQUIRED if k not in joints]
        if missing:
            raise RetargetError(f"{origin}: the mapping must name {', '.join(missing)} (needed for the root and facing)")
        up = str(d.get("up", "auto")).lower()
        if up not in ("y", "z", "auto"):
            raise RetargetError(f"{origin}: 'up' must be 'y', 'z' or 'auto', got {up!r}")
        ref = str(d.get("reference", "rest"))
        if ref not in ("rest", "pose", "snap_first_frame"):
            raise RetargetError(f"{origin}: 'reference' must be 'rest', 'pose' or 'snap_first_frame', got {ref!r}")
        pose = d.get("reference_pose", {})
        if not isinstance(pose, dict) or not all(
                isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v) for v in pose.values()):
            raise RetargetError(f"{origin}: 'reference_pose' maps source joint names to [x, y, z] Euler angles in degrees")
        if ref == "pose" and not pose:
            raise RetargetError(f"{origin}: 'reference' is 'pose' but no 'reference_pose' is given")
        return cls(name=str(d.get("name", origin)), joints=joints, up=up, reference=ref, reference_pose=pose,
                   description=str(d.get("description", "")), min_match=float(d.get("min_match", 0.8)))

    @classmethod
    def load(cls, path: str | Path) -> "Mapping":
        path = Path(path)
        data = read_json(path, RetargetError, "mapping file")
        return cls.from_dict(data, str(path))

    def resolve(self, source_names: list[str]) -> dict[str, int]:
        """SMPL joint name -> source joint index, for the joints this skeleton has."""
        lookup: dict[str, int] = {}
        for i, n in enumerate(source_names):
            lookup.setdefault(n, i)
            lookup.setdefault(_bare(n), i)  # "mixamorig:Hips" also answers to "Hips"
        out: dict[str, int] = {}
        used: set[int] = set()
        for smpl_name in JOINT_NAMES:
            for cand in self.joints.get(smpl_name, []):
                i = lookup.get(cand, lookup.get(_bare(cand)))
                if i is not None and i not in used:
                    out[smpl_name] = i
                    used.add(i)
                    break
        return out

    def match_score(self, source_names: list[str]) -> float:
        return len(self.resolve(source_names)) / max(1, len(self.joints))


def _bare(name: str) -> str:
    return name.rsplit(":", 1)[-1].rsplit("|", 1)[-1]


def presets() -> dict[str, Mapping]:
    """The built-in mapping presets (core/io/presets/*.json), by name."""
    out: dict[str, Mapping] = {}
    folder = resources.files("motionclip.core.io") / "presets"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            m = Mapping.from_dict(json.loads(entry.read_text()), entry.name)
            out[m.name] = m
    return out


def detect_mapping(source_names: list[str], origin: str = "") -> Mapping:
    """The preset that covers most of this skeleton; a clear error when none does."""
    scored = sorted(((m.match_score(source_names), m.name, m) for m in presets().values()), reverse=True)
    best_score, _, best = scored[0]
    if best_score < best.min_match or not all(k in best.resolve(source_names) for k in REQUIRED):
        shown = ", ".join(source_names[:40]) + (" ..." if len(source_names) > 40 else "")
        raise RetargetError(
            f"{origin + ': ' if origin else ''}no mapping preset matches this skeleton (joints: {shown}). "
            f"Closest preset: {best.name} ({best_score:.0%} of its joints found). Write a mapping JSON "
            f"(SMPL joint -> your joint name; see README, 'Retargeting a new skeleton') and pass it with --mapping."
        )
    return best


@dataclass
class RetargetReport:
    mapping: str
    mapped_joints: int
    bone_dir_err_deg: float  # mean angle between SMPL bones and the source bones they follow
    bone_dir_err_max_deg: float  # of the worst bone (its mean over frames)
    # Limbs (a joint with one mapped child bone) follow the source exactly up to rounding; at
    # the pelvis and chest SMPL's hips / collars sit elsewhere than the source's, and the
    # best-fit rotation leaves this mean angle.
    limb_dir_err_deg: float
    torso_dir_err_deg: float
    facing_err_deg: float  # mean angle between the source's and SMPL's facing on the floor
    scale: float  # source units -> metres, from leg lengths
    up: str
    reference: str
    unmapped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 4)
        return d


# The 24 rotations that map coordinate axes onto coordinate axes (for snapping).
def _axis_rotations() -> Tensor:
    mats = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for sx in (1, -1):
            for sy in (1, -1):
                for sz in (1, -1):
                    m = torch.zeros(3, 3, dtype=torch.float64)
                    for r, (c, s) in enumerate(zip(perm, (sx, sy, sz))):
                        m[r, c] = s
                    if torch.det(m) > 0:
                        mats.append(m)
    return torch.stack(mats)


_GRID = _axis_rotations()


def snap_to_grid(rot: Tensor) -> Tensor:
    """Nearest axis-aligned rotation to each [..., 3, 3] matrix."""
    score = torch.einsum("gij,...ij->...g", _GRID, rot)  # trace(G^T R)
    return _GRID[score.argmax(-1)]


_UP_TURN = {
    "y": torch.eye(3, dtype=torch.float64),
    # Z up -> Y up: (x, y, z) -> (x, z, -y), a -90 deg turn about X.
    "z": torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]], dtype=torch.float64),
}


def retarget(clip: SourceClip, mapping: Mapping | None = None, skeleton: Skeleton | None = None,
             up: str | None = None) -> tuple[Motion, RetargetReport]:
    """Retarget a source clip onto SMPL. Returns the motion and what the retarget measured."""
    skeleton = skeleton or neutral_skeleton()
    origin = clip.path or "clip"
    mapping = mapping or detect_mapping(clip.skeleton.names, origin)
    keep, idx, parents = _mapped_joints(clip, mapping, origin)
    pos_s, glob_s = clip.forward_kinematics(keep)  # joint-major: [J', T, 3], [J', T, 3, 3]
    dtype = pos_s.dtype

    # 1. Up axis.
    up = (up or mapping.up).lower()
    if up == "auto":
        up = _guess_up(pos_s, idx)
    if up not in _UP_TURN:
        raise RetargetError(f"{origin}: up axis must be 'y' or 'z', got {up!r}")
    C = _UP_TURN[up]
    if up != "y":
        pos_s = pos_s @ C.T.to(dtype)
        glob_s = C.to(dtype) @ glob_s

    # 2. Reference pose.
    ref_pos, ref_glob = _reference_pose(clip, mapping, keep, parents)
    ref_pos = ref_pos @ C.T
    ref_glob = C @ ref_glob

    # 3. Alignment of each SMPL joint to the reference pose.
    rest = skeleton.rest_joints.to(torch.float64)
    size = float((ref_pos.max(0).values - ref_pos.min(0).values).norm())
    if not (math.isfinite(size) and size > 1e-6):
        raise RetargetError(f"{origin}: the mapped joints of the skeleton all sit at one point (their rest offsets "
                            f"are zero), so bone directions cannot be measured; give the joints their OFFSETs")
    align, pairs, fitted = _align_joints(idx, ref_pos, rest, size)

    # 4. Global then local SMPL rotations (joint-major [24, T, 3, 3]).
    G, local = _smpl_rotations(idx, ref_glob, align, glob_s, clip.num_frames)

    # 5. Root translation, scaled by leg length.
    scale = _leg_scale(idx, ref_pos, rest, size)
    pelvis = pos_s[idx["Pelvis"]] * scale
    trans = pelvis - rest[0].to(dtype)
    quats = R.matrix_to_quat(local).transpose(0, 1)  # [T, 24, 4]

    motion = Motion(quats, trans, clip.fps, meta={"source": clip.path, "source_fps": clip.fps})
    offsets = (rest - rest[list(PARENT_OR_SELF)]).to(dtype)
    offsets[0] = rest[0]
    joints = chain_positions(G, offsets, PARENTS) + trans  # [24, T, 3]
    report = _measure(joints, pos_s * scale, idx, pairs, fitted, mapping, scale, up)
    motion.meta["retarget"] = report.as_dict()
    return motion, report


def _mapped_joints(clip: SourceClip, mapping: Mapping, origin: str) -> tuple[list[int], dict[str, int], list[int]]:
    """The source joints that matter (the mapped ones and their ancestors; fingers, eyes, ...
    are skipped), the SMPL name -> kept-joint index map and the kept joints' parents."""
    idx = mapping.resolve(clip.skeleton.names)
    missing = [k for k in REQUIRED if k not in idx]
    if missing:
        raise RetargetError(f"{origin}: mapping {mapping.name!r} finds no source joint for {', '.join(missing)}; "
                            f"the skeleton's joints are: {', '.join(clip.skeleton.names)}")
    keep = ancestors_closure(sorted(idx.values()), clip.skeleton.parents)
    where = {j: k for k, j in enumerate(keep)}
    idx = {n: where[j] for n, j in idx.items()}
    parents = [where[p] if p >= 0 else -1 for p in (clip.skeleton.parents[j] for j in keep)]
    return keep, idx, parents


def _reference_pose(clip: SourceClip, mapping: Mapping, keep: list[int], parents: list[int]) -> tuple[Tensor, Tensor]:
    """Positions and global rotations of the kept source joints in the mapping's reference pose."""
    ref_local = torch.eye(3, dtype=torch.float64).repeat(len(keep), 1, 1)
    if mapping.reference == "snap_first_frame":
        ref_local = snap_to_grid(clip.local_rot(keep)[0].to(torch.float64))
    elif mapping.reference == "pose":
        for k, j in enumerate(keep):
            name = clip.skeleton.names[j]
            xyz = mapping.reference_pose.get(name, mapping.reference_pose.get(_bare(name)))
            if xyz is not None:
                ref_local[k] = R.euler_to_matrix(torch.deg2rad(torch.tensor(xyz, dtype=torch.float64)), "XYZ")
    offsets = torch.as_tensor(clip.skeleton.offsets[keep], dtype=torch.float64)
    return source_fk(ref_local, offsets, parents)


def _align_joints(idx: dict[str, int], ref_pos: Tensor, rest: Tensor,
                  size: float) -> tuple[list[Tensor], list[tuple[int, int]], set[int]]:
    """Per SMPL joint, the rotation that lays its rest bones onto the source's reference bones."""
    eye = torch.eye(3, dtype=torch.float64)
    align: list[Tensor] = []
    pairs: list[tuple[int, int]] = []  # (SMPL joint, SMPL descendant) bones that follow source bones
    fitted: set[int] = set()  # joints with several child bones (pelvis, chest): a best fit, not exact
    for j, name in enumerate(JOINT_NAMES):
        a_par = align[PARENTS[j]] if PARENTS[j] >= 0 else eye
        if name not in idx:
            align.append(a_par)
            continue
        descs = _mapped_descendants(j, idx, ref_pos, 1e-3 * size)
        smpl_d = torch.stack([rest[d] - rest[j] for d in descs]) if descs else None
        src_d = torch.stack([ref_pos[idx[JOINT_NAMES[d]]] - ref_pos[idx[name]] for d in descs]) if descs else None
        pairs += [(j, d) for d in descs]
        if len(descs) >= 2:
            fitted.add(j)
        if descs and len(descs) >= 2 and _rank(src_d) >= 2:
            a = R.kabsch(_unit(smpl_d), _unit(src_d))
        elif descs:
            a = R.rotation_between(a_par @ _unit(smpl_d).mean(0), _unit(src_d).mean(0)) @ a_par
        else:
            a = a_par
        align.append(a)
    return align, pairs, fitted


def _smpl_rotations(idx: dict[str, int], ref_glob: Tensor, align: list[Tensor], glob_s: Tensor,
                    T: int) -> tuple[Tensor, Tensor]:
    """Global and local SMPL rotations, joint-major [24, T, 3, 3] each."""
    dtype = glob_s.dtype
    mapped = [j for j, n in enumerate(JOINT_NAMES) if n in idx]
    src_of = torch.tensor([idx[JOINT_NAMES[j]] for j in mapped])
    K = ref_glob[src_of].transpose(-1, -2) @ torch.stack([align[j] for j in mapped])  # [M, 3, 3]: Sref^-1 A
    # Unmapped SMPL joints copy their parent's global rotation (zero local rotation); an
    # unmapped root stays at identity. One contiguous [T, 3, 3] block per joint, no gathers.
    K = K.to(dtype)
    G = torch.empty(len(JOINT_NAMES), T, 3, 3, dtype=dtype)
    local = torch.empty_like(G)
    for j, name in enumerate(JOINT_NAMES):
        p = PARENTS[j]
        if name in idx:
            torch.matmul(glob_s[idx[name]], K[mapped.index(j)], out=G[j])
        elif p >= 0:
            G[j] = G[p]
        else:
            G[j] = torch.eye(3, dtype=dtype)
        if p >= 0:
            torch.matmul(G[p].transpose(-1, -2), G[j], out=local[j])
        else:
            local[j] = G[j]
    return G, local


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def _rank(dirs: Tensor) -> int:
    s = torch.linalg.svdvals(_unit(dirs))
    return int((s > 0.1 * s[0]).sum())


def _mapped_descendants(j: int, idx: dict[str, int], ref_pos: Tensor, min_len: float) -> list[int]:
    """Nearest mapped SMPL descendants of j along each branch, at a distance from j in the source."""
    out: list[int] = []
    here = ref_pos[idx[JOINT_NAMES[j]]]
    stack = [c for c, p in enumerate(PARENTS) if p == j]
    while stack:
        c = stack.pop(0)
        name = JOINT_NAMES[c]
        if name in idx and float((ref_pos[idx[name]] - here).norm()) > min_len:
            out.append(c)
        else:
            stack.extend(k for k, p in enumerate(PARENTS) if p == c)
    return out


def _guess_up(pos: Tensor, idx: dict[str, int]) -> str:
    """Up axis from the average direction pelvis -> head (or highest mapped spine joint)."""
    for name in ("Head", "Neck", "Spine3", "Spine2", "Spine1"):
        if name in idx:
            v = (pos[idx[name]] - pos[idx["Pelvis"]]).mean(0)
            return "z" if abs(float(v[2])) > abs(float(v[1])) else "y"
    return "y"


def _leg_scale(idx: dict[str, int], ref_pos: Tensor, rest: Tensor, size: float) -> float:
    """SMPL leg length / source leg length (hip -> knee -> ankle), averaged over both legs."""
    ratios = []
    for side in ("L", "R"):
        chain = [f"{side}_Hip", f"{side}_Knee", f"{side}_Ankle"]
        if all(c in idx for c in chain):
            src = sum(float((ref_pos[idx[a]] - ref_pos[idx[b]]).norm()) for a, b in zip(chain, chain[1:]))
            dst = sum(float((rest[JOINT_NAMES.index(a)] - rest[JOINT_NAMES.index(b)]).norm()) for a, b in zip(chain, chain[1:]))
            if src > 1e-9:
                ratios.append(dst / src)
    if ratios:
        return float(np.mean(ratios))
    smpl_size = float((rest.max(0).values - rest.min(0).values).norm())
    return smpl_size / max(size, 1e-9)


def _measure(joints: Tensor, pos_s: Tensor, idx: dict[str, int], pairs: list[tuple[int, int]], fitted: set[int],
             mapping: Mapping, scale: float, up: str) -> RetargetReport:
    """Compare SMPL joints [24, T, 3] with the source joints they follow [J', T, 3]."""
    if pairs:
        a = [p[0] for p in pairs]
        d = [p[1] for p in pairs]
        sa = [idx[JOINT_NAMES[p[0]]] for p in pairs]
        sd = [idx[JOINT_NAMES[p[1]]] for p in pairs]
        ang = torch.rad2deg(R.angle_between(joints[d] - joints[a], pos_s[sd] - pos_s[sa])).mean(-1)  # per bone
        mean_err, max_err = float(ang.mean()), float(ang.max())
        limb = torch.tensor([p[0] not in fitted for p in pairs])
        limb_err = float(ang[limb].mean()) if limb.any() else 0.0
        torso_err = float(ang[~limb].mean()) if (~limb).any() else 0.0
    else:
        mean_err = max_err = limb_err = torso_err = float("nan")
    hips = torch.stack([joints[0], joints[1], joints[2]], dim=-2)  # facing needs L_Hip (1), R_Hip (2)
    src = torch.stack([pos_s[idx["Pelvis"]], pos_s[idx["L_Hip"]], pos_s[idx["R_Hip"]]], dim=-2)
    face = torch.rad2deg(R.angle_between(facing_from_joints(hips), facing_from_joints(src)))
    return RetargetReport(
        mapping=mapping.name, mapped_joints=len(idx), bone_dir_err_deg=mean_err, bone_dir_err_max_deg=max_err,
        limb_dir_err_deg=limb_err, torso_dir_err_deg=torso_err, facing_err_deg=float(face.mean()), scale=scale, up=up, reference=mapping.reference,
        unmapped=[n for n in JOINT_NAMES if n not in idx],
    )


def hinge_agreement(motion: Motion, min_angle_deg: float = 20.0) -> dict[str, float]:
    """How much of the knees' and elbows' bending happens about SMPL's hinge axes (1 = all of it).

    SMPL's knees bend about X and its elbows about Y. A retarget that got bone twist wrong bends
    them about another axis, which bone directions alone would not reveal.
    """
    aa = motion.axis_angle().to(torch.float64)
    out: dict[str, float] = {}
    for label, names, axis in (("knee", ("L_Knee", "R_Knee"), 0), ("elbow", ("L_Elbow", "R_Elbow"), 1)):
        v = aa[:, [JOINT_NAMES.index(n) for n in names]].reshape(-1, 3)
        ang = v.norm(dim=-1)
        keep = ang > math.radians(min_angle_deg)
        if keep.any():
            out[label] = float((v[keep, axis].abs() / ang[keep]).mean())
    return out
