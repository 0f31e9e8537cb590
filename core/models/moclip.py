"""MoCLIP (2025): a motion-aware text encoder, trained jointly with a motion encoder head.

    head     joint positions + velocities from forward kinematics -> one MLP per body part
             (pose and velocity branches) -> attention across the parts of each frame -> attention
             across time (key padding mask) -> attention pooling over the REAL frames only -> a
             linear projection to the text-embedding size D.
    student  a trainable copy of the teacher text encoder (any TextEncoder: CLIP, MiniLM, ...).
    teacher  the frozen original, kept outside this module (never in its weights or optimizer).

    loss = symmetric contrastive cross-entropy(motion, student text; learnable temperature)
         + lambda_distill * MSE(student text, teacher text)
         + (1 - mean cos(student text, motion))

The published code mean-pooled over padded frames too; here padding never reaches the pooled
vector (tested). B = batch, T = frames, J = joints (24), P = body parts, D = text dim.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MotionClipError, check_fields
from ..protocol import JOINT_NAMES
from ..rotations import rot6d_to_matrix
from ..skeleton import Skeleton, neutral_skeleton
from .motionclip import sinusoidal_positions


def _parts(*groups: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(JOINT_NAMES.index(n) for n in g) for g in groups)


# Body parts over SMPL's 24 joints (the published head's 8-part graph, mapped to SMPL names).
BODY_PARTS: tuple[tuple[int, ...], ...] = _parts(
    ("Pelvis",),                                                      # root
    ("Pelvis", "Spine1", "Spine2", "Spine3", "Neck", "Head"),         # torso
    ("L_Collar", "L_Shoulder", "L_Elbow", "L_Wrist"),                 # left arm
    ("R_Collar", "R_Shoulder", "R_Elbow", "R_Wrist"),                 # right arm
    ("L_Hip", "L_Knee", "L_Ankle", "L_Foot"),                         # left leg
    ("R_Hip", "R_Knee", "R_Ankle", "R_Foot"),                         # right leg
    ("L_Wrist", "R_Wrist", "L_Hand", "R_Hand"),                       # hands
    ("L_Ankle", "R_Ankle", "L_Foot", "R_Foot"),                       # feet
)


@dataclass
class MotionHeadConfig:
    """The motion encoder head (stored in a MoCLIP run's config.json)."""

    out_dim: int = 384  # = the text encoder's dimension
    part_dim: int = 64  # per body part and frame (half pose, half velocity)
    width: int = 128  # per-frame width of the temporal transformer
    heads: int = 4
    limb_layers: int = 1  # attention across the parts of one frame
    time_layers: int = 2  # attention across frames
    ff_dim: int = 256
    dropout: float = 0.1
    max_frames: int = 1000
    fps: float = 30.0  # velocities are in metres per second at this rate

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                if not (f.name in ("limb_layers",) and v == 0):
                    raise MotionClipError(f"MoCLIP head config: {f.name} must be a positive integer, got {v!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise MotionClipError(f"MoCLIP head config: dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("part_dim", "width"):
            if getattr(self, name) % self.heads or (name == "part_dim" and self.part_dim % 2):
                raise MotionClipError(f"MoCLIP head config: {name} {getattr(self, name)} must be even and "
                                      f"divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MotionHeadConfig":
        check_fields(cls, d, "MoCLIP head config")
        return cls(**d)


def joint_features(rot6d: Tensor, trans: Tensor, mask: Tensor, skeleton: Skeleton, fps: float = 30.0
                   ) -> tuple[Tensor, Tensor]:
    """Positions and velocities of the 24 joints from forward kinematics.

    rot6d [B, T, J, 6], trans [B, T, 3], mask [B, T] -> pos [B, T, J, 3] (horizontally relative to
    the first frame's root, which canonicalised windows already put at the origin) and vel
    [B, T, J, 3] in m/s (zero on the first frame and on padding). Padded frames are zero."""
    B, T = rot6d.shape[:2]
    rest = skeleton.rest_joints.to(rot6d.device, rot6d.dtype)
    from ..skeleton import forward_kinematics

    rotmats = rot6d_to_matrix(rot6d.reshape(B * T, -1, 6))  # [B*T, J, 3, 3]
    pos = forward_kinematics(rotmats, rest, trans.reshape(B * T, 3))[0].reshape(B, T, -1, 3)
    pos = torch.where(mask[..., None, None], pos, torch.zeros_like(pos))
    vel = torch.zeros_like(pos)
    both = (mask[:, 1:] & mask[:, :-1])[..., None, None]  # a step between two real frames
    vel[:, 1:] = torch.where(both, (pos[:, 1:] - pos[:, :-1]) * fps, torch.zeros_like(pos[:, 1:]))
    return pos, vel


class MaskedAttentionPool(nn.Module):
    """A learned score per frame, softmax over the real frames only, weighted sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        s = self.score(x).squeeze(-1).float()  # [B, T]
        s = s.masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=1).to(x.dtype)  # zero weight on padding
        x = torch.where(mask[..., None], x, torch.zeros_like(x))  # padding may hold anything, even NaN
        return (w[..., None] * x).sum(dim=1)  # [B, W]


class MotionHead(nn.Module):
    """Motion windows (the batch format of core/data/windows.py) -> embeddings [B, D] (not normalised)."""

    def __init__(self, config: MotionHeadConfig, skeleton: Skeleton | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.skeleton = skeleton or neutral_skeleton()
        self.parts = BODY_PARTS
        half = c.part_dim // 2

        def mlp(n_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(n_in, c.part_dim), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.part_dim, half))

        self.pose_mlps = nn.ModuleList(mlp(len(p) * 3) for p in self.parts)
        self.vel_mlps = nn.ModuleList(mlp(len(p) * 3) for p in self.parts)
        self.part_embedding = nn.Parameter(torch.zeros(len(self.parts), c.part_dim))
        nn.init.normal_(self.part_embedding, std=0.02)
        self.limb_attention = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(c.part_dim, c.heads, c.ff_dim, c.dropout, "gelu", batch_first=True, norm_first=True),
            c.limb_layers, enable_nested_tensor=False) if c.limb_layers else nn.Identity()
        self.frame_proj = nn.Linear(len(self.parts) * c.part_dim, c.width)
        self.register_buffer("positions", sinusoidal_positions(c.max_frames, c.width), persistent=False)
        self.time_attention = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(c.width, c.heads, c.ff_dim, c.dropout, "gelu", batch_first=True, norm_first=True),
            c.time_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)
        self.pool = MaskedAttentionPool(c.width)
        self.proj = nn.Linear(c.width, c.out_dim)

    def forward(self, rot6d: Tensor, trans: Tensor, mask: Tensor) -> Tensor:
        """rot6d [B, T, 24, 6], trans [B, T, 3], mask [B, T] -> [B, D]."""
        B, T = rot6d.shape[:2]
        if T > self.config.max_frames:
            raise MotionClipError(f"{T} frames is longer than the MoCLIP head's max_frames ({self.config.max_frames})")
        if mask.shape != (B, T) or not bool(mask.any(dim=1).all()):
            raise MotionClipError("every motion needs at least one real frame, and the mask must be [B, T]")
        pos, vel = joint_features(rot6d, trans, mask, self.skeleton, self.config.fps)  # [B, T, J, 3] each
        # Positions relative to the root's ground point: the pose, independent of where the body stands.
        local = pos - pos[:, :, :1] * pos.new_tensor([1.0, 0.0, 1.0])
        tokens = [torch.cat([pm(local[:, :, p].flatten(2)), vm(vel[:, :, p].flatten(2))], dim=-1)
                  for p, pm, vm in zip(self.parts, self.pose_mlps, self.vel_mlps)]
        x = torch.stack(tokens, dim=2) + self.part_embedding  # [B, T, P, part_dim]
        x = self.limb_attention(x.flatten(0, 1)).unflatten(0, (B, T))  # across the parts of each frame
        x = self.frame_proj(x.flatten(2)) + self.positions[:T]  # [B, T, W]
        x = self.time_attention(x, src_key_padding_mask=~mask)  # across the real frames
        return self.proj(self.pool(self.norm(x), mask))  # [B, D]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# The CLIP temperature: logit scale initialised to 1 / 0.07 and clamped at 100.
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)


class MoCLIP(nn.Module):
    """The trainable part of MoCLIP: student text encoder + motion head + temperature.

    The frozen teacher is deliberately not a submodule: it is never saved with these weights
    nor given to the optimizer. Parameter groups: "head" (head + temperature), "student"."""

    def __init__(self, student: nn.Module, head_config: MotionHeadConfig) -> None:
        super().__init__()
        if head_config.out_dim != student.dim:
            raise MotionClipError(f"MoCLIP head out_dim {head_config.out_dim} must equal the text encoder's "
                                  f"dimension {student.dim}")
        self.student = student
        self.head = MotionHead(head_config)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def group_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"head": [*self.head.parameters(), self.logit_scale], "student": list(self.student.parameters())}

    def set_trainable(self, groups: list[str] | tuple[str, ...], student_layers: int | None = None) -> None:
        """Train exactly these groups; the others are frozen (a frozen student stays in eval mode).

        student_layers: progressive unfreezing - only the student's top k transformer layers (and the
        weights above them, such as a final norm or projection) train; None trains the whole student."""
        for name, params in self.group_parameters().items():
            for p in params:
                p.requires_grad_(name in groups)
        if "student" in groups:
            self.student.unfreeze()
            if student_layers is not None:
                for p in student_frozen_parameters(self.student, student_layers):
                    p.requires_grad_(False)
        else:
            self.student.freeze()

    def encode_motion(self, batch: dict[str, Any]) -> Tensor:
        return self.head(batch["rot6d"], batch["trans"], batch["mask"])

    def forward(self, batch: dict[str, Any], texts: list[str] | None = None) -> dict[str, Tensor]:
        """Motion embeddings, and the student's text embeddings when texts are given (gradients flow
        into the student only while it is trainable)."""
        out = {"motion": self.encode_motion(batch), "logit_scale": self.logit_scale * 1.0}  # through DDP's forward
        if texts is not None:
            out["text"] = self.student.encode_text(texts, to_cpu=False)
        return out


_LAYER = re.compile(r"\.(?:layer|layers|resblocks|h|blocks)\.(\d+)\.")


def student_layer_of(name: str) -> int | None:
    """The transformer layer a text-encoder parameter belongs to (by its name), or None."""
    m = _LAYER.search(f".{name}")
    return int(m.group(1)) if m else None


def student_num_layers(student: nn.Module) -> int:
    layers = [student_layer_of(n) for n, _ in student.named_parameters()]
    return max((i for i in layers if i is not None), default=-1) + 1


def student_frozen_parameters(student: nn.Module, top_layers: int) -> list[nn.Parameter]:
    """The parameters that stay frozen when only the top `top_layers` layers of `student` train: the lower
    layers and the embeddings (parameters outside the layers whose name says "embed"). Parameters outside
    the layers otherwise (final norm, projection, an unused pooler) train with the top layers."""
    n = student_num_layers(student)
    if n == 0:
        raise MotionClipError(f"progressive unfreezing: found no numbered transformer layers in {student!r}")
    if isinstance(top_layers, bool) or not isinstance(top_layers, int) or top_layers < 1:
        raise MotionClipError(f"student_layers must be a positive whole number, got {top_layers!r}")
    out = []
    for name, p in student.named_parameters():
        i = student_layer_of(name)
        if (i is not None and i < n - top_layers) or (i is None and "embed" in name and top_layers < n):
            out.append(p)
    return out


def moclip_loss(motion: Tensor, student: Tensor, teacher: Tensor, logit_scale: Tensor,
                lambda_distill: float = 0.4) -> dict[str, Tensor]:
    """MoCLIP's loss terms and their "total", as scalar tensors.

    motion, student, teacher: [B, D] (normalised here); logit_scale: the log of the inverse
    temperature (clamped at log 100). contrastive: symmetric cross-entropy over the B x B cosine
    logits, the matching pair on the diagonal; distill: mean squared error between the student's
    and the teacher's unit embeddings (mean over B * D elements); align: 1 - mean cos(student, motion)."""
    if motion.shape != student.shape or teacher.shape != student.shape:
        raise MotionClipError(f"MoCLIP loss: motion {list(motion.shape)}, student {list(student.shape)} and teacher "
                              f"{list(teacher.shape)} embeddings must have the same shape [B, D]")
    m = F.normalize(motion.float(), dim=-1)
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float().to(s.device), dim=-1)
    scale = logit_scale.clamp(max=LOGIT_SCALE_MAX).exp()
    logits = scale * m @ s.T  # [B, B]: motion i against text j
    labels = torch.arange(m.shape[0], device=m.device)
    contrastive = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    distill = F.mse_loss(s, t)
    align = 1.0 - (s * m).sum(-1).mean()
    total = contrastive + lambda_distill * distill + align
    return {"contrastive": contrastive, "distill": distill, "align": align, "total": total,
            "temperature": (1.0 / scale).detach()}
