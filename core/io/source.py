"""A motion in its source skeleton (before retargeting to SMPL).

Per-frame arrays here are joint-major ([J, T, ...]): each joint's frames are one contiguous
block, so walking the hierarchy writes whole blocks instead of gathering strided slices. This
keeps import + retarget above 50,000 source frames/s on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import rotations as R
from ..skeleton import chain_positions


@dataclass
class SourceSkeleton:
    names: list[str]
    parents: list[int]  # -1 for the root; parents come before children
    offsets: np.ndarray  # [J, 3] rest offset of each joint from its parent, source units
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class SourceClip:
    """Local rotations come either as matrices or, from BVH, as Euler angles converted on demand
    (so joints that retargeting does not need - fingers, eyes - are never converted)."""

    skeleton: SourceSkeleton
    local_pos: Tensor  # [J, T, 3] local translation of each joint (offset or position channels)
    fps: float
    rotmats: Tensor | None = None  # [J, T, 3, 3]
    euler: Tensor | None = None  # [J, T, 3] radians, in each joint's channel order
    euler_orders: list[str] | None = None  # per joint, e.g. "ZXY"
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.local_pos.shape[1])

    def local_rot(self, joints: list[int] | None = None) -> Tensor:
        """Local rotation matrices [len(joints), T, 3, 3] (all joints by default)."""
        joints = list(range(len(self.skeleton.names))) if joints is None else joints
        if self.rotmats is not None:
            return self.rotmats[joints]
        assert self.euler is not None and self.euler_orders is not None
        groups: dict[str, list[int]] = {}
        for k, j in enumerate(joints):
            groups.setdefault(self.euler_orders[j], []).append(k)
        if len(groups) == 1:  # the usual case: one channel order for the whole file
            return R.euler_to_matrix(self.euler[joints], next(iter(groups)))
        out = torch.empty(len(joints), self.num_frames, 3, 3, dtype=self.euler.dtype)
        for order, ks in groups.items():
            out[ks] = R.euler_to_matrix(self.euler[[joints[k] for k in ks]], order)
        return out

    def forward_kinematics(self, joints: list[int] | None = None) -> tuple[Tensor, Tensor]:
        """World positions [J', T, 3] and global rotations [J', T, 3, 3] of `joints` (a set closed
        under parents, in skeleton order; all joints by default)."""
        joints = list(range(len(self.skeleton.names))) if joints is None else joints
        where = {j: k for k, j in enumerate(joints)}
        parents = [where[p] if p >= 0 else -1 for p in (self.skeleton.parents[j] for j in joints)]
        return source_fk(self.local_rot(joints), self.local_pos[joints], parents)


def source_fk(local_rot: Tensor, local_pos: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Joint-major FK: local rotations [J, ..., 3, 3] and translations [J, ..., 3] ->
    world positions [J, ..., 3] and global rotations [J, ..., 3, 3]."""
    G = torch.empty_like(local_rot)
    for j, p in enumerate(parents):
        if p < 0:
            G[j] = local_rot[j]
        else:
            torch.matmul(G[p], local_rot[j], out=G[j])
    return chain_positions(G, local_pos, parents), G


def ancestors_closure(joints: list[int], parents: list[int]) -> list[int]:
    """The joints plus all their ancestors, in skeleton order."""
    keep: set[int] = set()
    for j in joints:
        while j >= 0 and j not in keep:
            keep.add(j)
            j = parents[j]
    return sorted(keep)
