"""Bodies to render: a triangle mesh posed by linear blend skinning, the same for every renderer.

    mannequin   the wooden mannequin of the Apache-2.0 package mannequin-x, driven by SMPL-X body
                rotations (SMPL joints 1-21); no licensed file needed. Decimated to
                `max_faces` triangles by default (48k -> 12k), which software OpenGL draws 2-3x faster.
    smpl        the SMPL / SMPL-H / SMPL-X mesh of the user's own model file (read without unpickling
                code and built through `smplx` by core.skeleton.load_skeleton), skinned with its own weights at zero shape; pose
                blend shapes are not applied.
    skeleton    capsules along the bones and a ball for the head: needs nothing, draws fastest.

A body turns a Motion and a list of frame indices into posed vertices [N, V, 3] (metres, Y up, the
motion's own frame) and SMPL joint positions [N, 24, 3]; the renderers only draw triangles.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from motionclip.core.errors import MotionClipError
from motionclip.core.motion import Motion
from motionclip.core.protocol import PARENTS
from motionclip.core.skeleton import Skeleton, load_skeleton, neutral_skeleton

from .shared_scene import align_z

BODIES = ("mannequin", "smpl", "skeleton")
DEFAULT_MAX_FACES = 12000

# Colours that every renderer uses for each body: linear RGB in [0, 1] (both renderers write sRGB
# images, so 0.6 linear shows as about 0.8).
BODY_COLORS = {
    "mannequin": (0.62, 0.40, 0.22),  # light wood
    "smpl": (0.32, 0.42, 0.62),       # blue-grey, as in most SMPL renders
    "skeleton": (0.10, 0.20, 0.48),
}


class RenderError(MotionClipError):
    """Rendering cannot proceed: a bad option, a missing dependency, an unwritable output."""


@dataclass
class PosedFrames:
    vertices: np.ndarray  # [N, V, 3] float32, metres, Y up
    joints: np.ndarray    # [N, 24, 3] float32 SMPL joints (for the camera and the Blender job)


class Body:
    """A skinned mesh: rest vertices [V, 3], faces [F, 3], skin weights [V, J] over the body's joints."""

    name = "body"

    def __init__(self, rest_vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                 skeleton: Skeleton) -> None:
        self.rest_vertices = torch.as_tensor(np.asarray(rest_vertices, np.float32))
        self.faces = np.ascontiguousarray(np.asarray(faces, np.int32))
        self.weights = torch.as_tensor(np.asarray(weights, np.float32))
        self.skeleton = skeleton
        if self.weights.shape[0] != self.rest_vertices.shape[0]:
            raise RenderError(f"{self.name}: {self.weights.shape[0]} skin weights for {self.rest_vertices.shape[0]} vertices")

    @property
    def color(self) -> tuple[float, float, float]:
        return BODY_COLORS[self.name]

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def joint_transforms(self, motion: Motion, frames: Tensor) -> Tensor:
        """Skinning matrices [N, J, 3, 4]: rest position -> posed position, per joint of the body."""
        rotmats = motion.rotmats()[frames]  # [N, 24, 3, 3]
        rest = self.skeleton.rest_joints
        pos, glob = self.skeleton.forward_kinematics(rotmats, motion.trans[frames])  # [N, 24, 3], [N, 24, 3, 3]
        shift = pos - (glob @ rest[None, :, :, None])[..., 0]  # p_j - G_j r_j
        return torch.cat([glob, shift[..., None]], dim=-1)

    def pose(self, motion: Motion, frames: Sequence[int] | None = None) -> PosedFrames:
        """Posed vertices and SMPL joints of the given frames (all frames when None)."""
        idx = _frame_tensor(motion, frames)
        with torch.no_grad():
            A = self.joint_transforms(motion, idx)  # [N, J, 3, 4]
            n, j = A.shape[:2]
            M = (self.weights @ A.reshape(n, j, 12)).reshape(n, -1, 3, 4)  # blended per vertex [N, V, 3, 4]
            v = (M[..., :3] @ self.rest_vertices[None, :, :, None])[..., 0] + M[..., 3]
            joints = self.skeleton.forward_kinematics(motion.rotmats()[idx], motion.trans[idx])[0]
        return PosedFrames(v.float().numpy(), joints.float().numpy())


def _frame_tensor(motion: Motion, frames: Sequence[int] | None) -> Tensor:
    if frames is None:
        return torch.arange(motion.num_frames)
    idx = torch.as_tensor(list(frames), dtype=torch.long)
    if idx.numel() == 0:
        raise RenderError("no frame to render: the frame list is empty")
    bad = (idx < 0) | (idx >= motion.num_frames)
    if bool(bad.any()):
        raise RenderError(f"frame {int(idx[bad][0])} is out of range: the motion has {motion.num_frames} frames "
                          f"(0..{motion.num_frames - 1})")
    return idx


# ---------------------------------------------------------------------------------------------- skeleton

class SkeletonBody(Body):
    """Capsules along the 23 bones (each rigid with its parent joint) and a ball for the head."""

    name = "skeleton"

    def __init__(self, skeleton: Skeleton | None = None, radius: float = 0.035, segments: int = 8) -> None:
        import trimesh

        skeleton = skeleton or neutral_skeleton()
        rest = skeleton.rest_joints.double().numpy()
        verts, faces, owner = [], [], []
        count = 0

        def add(mesh, joint: int) -> None:
            nonlocal count
            verts.append(np.asarray(mesh.vertices))
            faces.append(np.asarray(mesh.faces) + count)
            owner.append(np.full(len(mesh.vertices), joint))
            count += len(mesh.vertices)

        for j, p in enumerate(PARENTS):
            if p < 0:
                continue
            a, b = rest[p], rest[j]
            length = float(np.linalg.norm(b - a))
            if length < 1e-4:
                continue
            cap = trimesh.creation.capsule(height=length, radius=radius, count=[segments, segments])
            cap.apply_transform(align_z(b - a, (a + b) / 2))
            add(cap, p)  # a bone moves with its parent joint
        head = 15
        ball = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
        ball.apply_translation(rest[head] + np.array([0.0, 0.03, 0.0]))
        add(ball, head)
        v = np.concatenate(verts)
        w = np.zeros((len(v), len(PARENTS)), np.float32)
        w[np.arange(len(v)), np.concatenate(owner)] = 1.0
        super().__init__(v, np.concatenate(faces), w, skeleton)


# ---------------------------------------------------------------------------------------------- SMPL mesh

class SmplBody(Body):
    """The user's SMPL-family mesh, skinned with its own weights (zero shape, no pose blend shapes)."""

    name = "smpl"

    def __init__(self, model_path: str | os.PathLike | None = None, gender: str = "neutral") -> None:
        skeleton = load_skeleton(model_path, gender=gender)
        if skeleton.mesh is None:
            raise RenderError(
                "the smpl body needs your SMPL / SMPL-H / SMPL-X model file: give --smpl-model PATH or set "
                "$MOTIONCLIP_SMPL_MODEL (files from smpl.is.tue.mpg.de / smpl-x.is.tue.mpg.de; they are "
                "licensed and not shipped), or use --body mannequin")
        mesh = skeleton.mesh
        super().__init__(mesh.vertices.numpy(), mesh.faces.numpy(), mesh.weights.numpy(), skeleton)
        self.source = skeleton.source


# ---------------------------------------------------------------------------------------------- mannequin

def _import_mannequin():
    try:
        from mannequin import Mannequin
    except ImportError as exc:
        raise RenderError(f"the mannequin body needs the mannequin-x package ({exc}): "
                          f"pip install 'motionclip[render]' (or: pip install mannequin-x)") from None
    return Mannequin


@functools.lru_cache(maxsize=4)
def _mannequin_mesh(max_faces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """The wooden mannequin's rest mesh, decimated to at most `max_faces` triangles (0: all),
    its skin weights [V, J] over its own joints, and the joints' bind positions [J, 3]."""
    Mannequin = _import_mannequin()
    m = Mannequin("wooden")
    # mannequin-x 0.3 keeps its skinning data private; tests/test_render.py checks that this
    # skinning reproduces Mannequin.vertices() for random poses.
    verts = np.asarray(m._identity["skin_vertices"], np.float64)
    bind = np.asarray(m._identity["skin_bind_positions"], np.float32)
    idx, w = np.asarray(m._skin_joint_indices), np.asarray(m._skin_weights, np.float32)
    faces = np.asarray(m.faces, np.int64)
    dense = np.zeros((len(verts), len(m.joint_names)), np.float32)
    np.add.at(dense, (np.arange(len(verts))[:, None], idx), w)
    if max_faces and len(faces) > max_faces:
        w_ = m._weights
        parts = list(zip(w_.skin_part_vertex_starts, w_.skin_part_vertex_counts, w_.skin_part_face_starts,
                         w_.skin_part_face_counts))
        verts, faces, dense = _decimate_parts(verts, faces, dense, parts, int(max_faces))
    return verts.astype(np.float32), faces.astype(np.int32), dense, bind, tuple(m.joint_names)


def _decimate_parts(verts: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                    parts: list[tuple[int, int, int, int]], max_faces: int):
    """Decimate each part (vertex start, count, face start, count) on its own to its share of
    `max_faces`: no vertex merges across parts (the mannequin's torso, limbs, head and joint balls),
    and each kept vertex takes the skin weights of the closest original vertex of its own part."""
    try:
        import fast_simplification
    except ImportError as exc:
        raise RenderError(f"decimating the mannequin needs fast-simplification ({exc}): pip install "
                          f"'motionclip[render]', or render the full mesh (max_faces=0)") from None
    from scipy.spatial import cKDTree

    scale = max_faces / len(faces)
    out_v, out_f, out_w = [], [], []
    count = 0
    for vs, vc, fs, fc in parts:
        pv, pf, pw = verts[vs:vs + vc], faces[fs:fs + fc] - vs, weights[vs:vs + vc]
        target = int(round(fc * scale))
        if target >= 64 and target < fc:
            small, small_f = fast_simplification.simplify(pv, pf.astype(np.int32), target_count=target)
            nearest = cKDTree(pv).query(small)[1]
            pv, pf, pw = small, np.asarray(small_f, np.int64), pw[nearest]
        out_v.append(pv)
        out_f.append(pf + count)
        out_w.append(pw)
        count += len(pv)
    return np.concatenate(out_v), np.concatenate(out_f), np.concatenate(out_w)


class MannequinBody(Body):
    """mannequin-x's wooden mannequin: SMPL body rotations through its own forward kinematics."""

    name = "mannequin"

    def __init__(self, max_faces: int = DEFAULT_MAX_FACES) -> None:
        verts, faces, weights, bind, names = _mannequin_mesh(int(max_faces))
        super().__init__(verts, faces, weights, neutral_skeleton())
        self.bind = torch.as_tensor(bind)
        self.joint_names = names
        self._model = _import_mannequin()("wooden")

    def mannequin_pose(self, motion: Motion, frames: Tensor) -> dict[str, np.ndarray]:
        """mannequin-x pose parameters (body-models SMPL-X fields) for the frames."""
        aa = motion.axis_angle()[frames].double().numpy()  # [N, 24, 3]
        pose = self._model.rest_pose(batch_dims=(len(frames),), dtype=np.float64)
        pose["body_pose"] = aa[:, 1:22]
        pose["pelvis_rotation"] = aa[:, 0]
        pose["global_translation"] = motion.trans[frames].double().numpy()
        return pose

    def joint_transforms(self, motion: Motion, frames: Tensor) -> Tensor:
        T = torch.as_tensor(self._model.joint_transforms(self.mannequin_pose(motion, frames)), dtype=torch.float32)
        R, t = T[..., :3, :3], T[..., :3, 3]  # [N, J, 3, 3], [N, J, 3]
        shift = t - (R @ self.bind[None, :, :, None])[..., 0]
        return torch.cat([R, shift[..., None]], dim=-1)


# ---------------------------------------------------------------------------------------------- factory

def make_body(name: str = "mannequin", *, smpl_model: str | os.PathLike | None = None, gender: str = "neutral",
              max_faces: int = DEFAULT_MAX_FACES, skeleton: Skeleton | None = None) -> Body:
    """A body by name: "mannequin", "smpl" (needs a model file) or "skeleton"."""
    if isinstance(name, Body):
        return name
    if name == "mannequin":
        return MannequinBody(max_faces=max_faces)
    if name == "smpl":
        path = smpl_model if smpl_model is not None else os.environ.get("MOTIONCLIP_SMPL_MODEL") or None
        if path is None:
            raise RenderError("the smpl body needs your SMPL / SMPL-H / SMPL-X model file: give --smpl-model PATH "
                              "or set $MOTIONCLIP_SMPL_MODEL (licensed files, not shipped), or use --body mannequin "
                              "(no file needed) or --body skeleton")
        return SmplBody(Path(path), gender=gender)
    if name == "skeleton":
        return SkeletonBody(skeleton)
    raise RenderError(f"unknown body {name!r}; choose one of {', '.join(BODIES)}")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [N, V, 3] of posed vertices [N, V, 3]."""
    v = torch.from_numpy(np.ascontiguousarray(vertices, np.float32))
    f = torch.from_numpy(faces.astype(np.int64))
    a, b, c = v[:, f[:, 0]], v[:, f[:, 1]], v[:, f[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)  # [N, F, 3]
    n = torch.zeros_like(v)
    for k in range(3):
        n.index_add_(1, f[:, k], fn)
    return torch.nn.functional.normalize(n, dim=-1).numpy()
