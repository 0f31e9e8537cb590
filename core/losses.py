"""MotionCLIP's training losses: one implementation for training and validation.

    rc     MSE on the pose representation (rot6d + root translation; or the model's own per-frame
           features when it returns `feats` / `target_feats`, e.g. z-scored by the data's statistics)
    rcxyz  MSE on joint positions from forward kinematics (the paper used SMPL vertices:
           pass `vertices_fn` to use a body mesh instead)
    vel    MSE on frame-to-frame differences of the same representation
    text   mean(1 - cos(z, text embedding))
    image  mean(1 - cos(z, image embedding of a rendered frame))

Every mean is over real frames only: padded frames (mask False) contribute nothing, whatever
they hold. B = batch, T = frames, J = joints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import MotionClipError
from .rotations import rot6d_to_matrix
from .skeleton import Skeleton

# (rotmats [N, J, 3, 3], trans [N, 3]) -> points [N, V, 3], e.g. an SMPL body's vertices.
VerticesFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class LossWeights:
    """Weight of each term in the total (paper defaults: lambda 100 for rc/rcxyz/vel, 1 per cosine)."""

    rc: float = 100.0
    rcxyz: float = 100.0
    vel: float = 100.0
    text: float = 1.0
    image: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            w = getattr(self, f.name)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise MotionClipError(f"loss weight {f.name} must be a finite number >= 0, got {w!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _pose(rot6d: Tensor, trans: Tensor) -> Tensor:
    """[B, T, J, 6], [B, T, 3] -> the pose representation [B, T, J * 6 + 3]."""
    return torch.cat([rot6d.flatten(2), trans], dim=-1)


def _cosine_term(z: Tensor, emb: Tensor, name: str) -> Tensor:
    if emb.shape != z.shape:
        raise MotionClipError(f"{name} embeddings have shape {list(emb.shape)} but the latents z have "
                              f"{list(z.shape)}: the model's latent_dim must equal the encoder's dimension")
    return (1.0 - F.cosine_similarity(z, emb.to(z.dtype), dim=-1)).mean()


def motionclip_loss(batch: dict[str, Any], out: dict[str, Tensor], skeleton: Skeleton | None,
                    text_emb: Tensor | None = None, image_emb: Tensor | None = None,
                    weights: LossWeights | None = None, vertices_fn: VerticesFn | None = None) -> dict[str, Tensor]:
    """Each term and their weighted "total", as scalar tensors.

    batch: rot6d [B, T, J, 6], trans [B, T, 3], mask [B, T] (core/data/windows.py); out: the
    model's z [B, D], rot6d, trans of the same shapes. text_emb / image_emb [B, D]: None leaves
    that term out (absent from the dict and the total). weights: None = paper defaults.
    skeleton: the rest skeleton for rcxyz (may be None when vertices_fn is given).
    """
    mask = batch["mask"].to(out["rot6d"].device)
    if not bool(mask.any()):
        raise MotionClipError("the batch has no real frame (its mask is all False)")
    if "feats" in out and "target_feats" in out:  # the model's own features (e.g. z-scored): rc and vel on them
        target, pred = out["target_feats"].detach().to(out["feats"]), out["feats"]  # [B, T, F]
    else:
        target = _pose(batch["rot6d"], batch["trans"]).to(out["rot6d"])  # [B, T, F]
        pred = _pose(out["rot6d"], out["trans"])  # [B, T, F]
    if pred.shape != target.shape or mask.shape != target.shape[:2]:
        raise MotionClipError(f"model output {list(pred.shape)}, batch {list(target.shape)} and mask "
                              f"{list(mask.shape)} do not describe the same frames")
    losses: dict[str, Tensor] = {}

    # Boolean indexing keeps only real frames: padding adds nothing, not even a NaN. A batch without
    # padding (same-length windows) skips the gather and its scatter in the backward pass.
    full = bool(mask.all())
    real = (lambda x: x.flatten(0, 1)) if full else (lambda x: x[mask])  # [B, T, ...] -> [N, ...]
    losses["rc"] = F.mse_loss(real(pred), real(target))

    if vertices_fn is None and skeleton is None:
        raise MotionClipError("rcxyz needs a skeleton (e.g. neutral_skeleton()) or a vertices_fn")

    def points(rot6d: Tensor, trans: Tensor) -> Tensor:  # real frames -> [N, J or V, 3]
        rotmats = rot6d_to_matrix(real(rot6d))  # [N, J, 3, 3]
        if vertices_fn is not None:
            return vertices_fn(rotmats, real(trans))
        return skeleton.forward_kinematics(rotmats, real(trans))[0]

    with torch.no_grad():
        target_points = points(batch["rot6d"].to(pred), batch["trans"].to(pred))
    losses["rcxyz"] = F.mse_loss(points(out["rot6d"], out["trans"]), target_points)

    both = mask[:, 1:] & mask[:, :-1]  # [B, T - 1]: steps between two real frames
    if bool(both.any()):
        vel_pred, vel_target = pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1]
        losses["vel"] = (F.mse_loss(vel_pred, vel_target) if full
                         else F.mse_loss(vel_pred[both], vel_target[both]))
    else:  # single-frame motions have no velocity
        losses["vel"] = pred.new_zeros(())

    if text_emb is not None:
        losses["text"] = _cosine_term(out["z"], text_emb, "text")
    if image_emb is not None:
        losses["image"] = _cosine_term(out["z"], image_emb, "image")

    w = (weights or LossWeights()).to_dict()
    losses["total"] = sum(w[k] * v for k, v in losses.items())
    return losses
