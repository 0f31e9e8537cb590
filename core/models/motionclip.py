"""MotionCLIP's transformer auto-encoder (Tevet et al., ECCV 2022), for variable-length motions.

Encoder: per-frame features (24 joint rotations in 6D + root translation = 147) -> linear ->
+ sinusoidal positions -> a learned prefix token in front -> transformer encoder over the real
frames (key padding mask); the latent z is the prefix token's output. No VAE: one token, no sigma.
Decoder: one query per frame that is only its positional encoding, cross-attending to z (a
memory of length 1) -> transformer decoder -> linear head back to 147 features per frame.
Unlike the paper's fixed 60 frames, any length up to `max_frames` works, per item.

Options that take the decoder out of its early mean-pose plateau (DESIGN.md section 6; the
defaults keep older runs as they were): `normalize` z-scores every feature by the training data's
mean and std (stored with the weights; the decoder's output is z-scored too and inverted before
the joint losses), `norm_first` uses pre-LayerNorm layers, `query_dropout` 0 keeps the decoder's
positional queries clean, and `width` < latent_dim runs narrower layers between two projections
of the latent (cheaper on a CPU; z stays the text encoder's size).

B = batch, T = frames, J = joints (24), D = latent_dim, W = width (D unless set), F = J * 6 + 3.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..errors import MotionClipError, check_fields
from ..rotations import matrix_to_rot6d


@dataclass
class MotionCLIPConfig:
    """Everything needed to rebuild the model (stored as config.json in a run directory)."""

    latent_dim: int = 512  # transformer width = size of z; must equal the text encoder's output dim
    enc_layers: int = 8  # transformer encoder layers
    dec_layers: int = 8  # transformer decoder layers
    heads: int = 4  # attention heads; must divide latent_dim
    ff_dim: int = 1024  # hidden size of each layer's feed-forward block
    dropout: float = 0.1  # dropout in the layers and on the positional encoding, in [0, 1)
    activation: str = "gelu"  # feed-forward activation: "gelu" (paper) or "relu"
    max_frames: int = 1000  # length of the positional-encoding table: the longest motion in frames
    num_joints: int = 24  # joints per frame (SMPL's 24)
    # How the root translation enters and leaves the network: "absolute" (the paper: x, y, z per
    # frame) or "velocity" (per-frame x/z displacement and absolute height; the decoder's
    # displacements are summed back to a trajectory that starts at the origin). Velocity features
    # do not grow with the distance travelled, which helps long walks and runs.
    root: str = "absolute"
    width: int = 0  # transformer width W; 0 = latent_dim. Otherwise z is projected W <-> D at both ends.
    norm_first: bool = False  # pre-LayerNorm layers (trains faster, less warm-up) instead of the paper's post-LN
    query_dropout: float = -1.0  # dropout on the decoder's positional queries; < 0 = the same as `dropout`
    normalize: bool = False  # z-score the features by the data's mean/std (buffers feat_mean / feat_std)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool) and not isinstance(value, bool):
                raise MotionClipError(f"model config: {f.name} must be true or false, got {value!r}")
            if f.name == "width":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise MotionClipError(f"model config: width must be 0 (= latent_dim) or a positive integer, got {value!r}")
            elif f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise MotionClipError(f"model config: {f.name} must be a positive integer, got {value!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise MotionClipError(f"model config: dropout must be a number in [0, 1), got {self.dropout!r}")
        q = self.query_dropout
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not q < 1.0:
            raise MotionClipError(f"model config: query_dropout must be a number below 1 (negative: same as dropout), got {q!r}")
        if self.root not in ("absolute", "velocity"):
            raise MotionClipError(f"model config: root must be 'absolute' or 'velocity', got {self.root!r}")
        if self.activation not in ("gelu", "relu"):
            raise MotionClipError(f"model config: activation must be 'gelu' or 'relu', got {self.activation!r}")
        W = self.model_width
        if W % self.heads:
            raise MotionClipError(
                f"model config: the width {W} is not divisible by heads {self.heads}; "
                f"choose a number of heads that divides it (e.g. 4 or 8)"
            )
        if W % 2:
            raise MotionClipError(f"model config: the width must be even (sinusoidal positions), got {W}")

    @property
    def model_width(self) -> int:
        return self.width or self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MotionCLIPConfig":
        if not isinstance(d, dict):
            raise MotionClipError(f"model config: expected a JSON object of fields, got {type(d).__name__}")
        check_fields(cls, d, "model config", known_label="known fields")
        return cls(**d)


# Presets as data. "paper": the published settings. "small": trains on a 2-core CPU in minutes.
# latent_dim is left to the text encoder (the trainer passes it) except where the paper fixes it.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(latent_dim=512, enc_layers=8, dec_layers=8, heads=4, ff_dim=1024, dropout=0.1, root="velocity"),
    "small": dict(enc_layers=4, dec_layers=4, heads=4, ff_dim=512, dropout=0.1, root="velocity"),
    # The built-in model's: narrow pre-LN layers on z-scored features, no dropout (on a CPU, dropout's random
    # masks cost a fifth of a training step), up to 15 s at 20 fps.
    "builtin": dict(width=256, enc_layers=2, dec_layers=2, heads=4, ff_dim=512, dropout=0.0, query_dropout=0.0,
                    norm_first=True, normalize=True, root="velocity", max_frames=300),
}


def config_from_preset(name: str, **overrides: Any) -> MotionCLIPConfig:
    """A preset's config with some fields replaced, e.g. config_from_preset("small", latent_dim=384)."""
    if name not in PRESETS:
        raise MotionClipError(f"unknown model preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return MotionCLIPConfig.from_dict({**PRESETS[name], **overrides})


def lengths_to_mask(lengths: Tensor | Sequence[int], num_frames: int | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """[B] frame counts -> [B, T] bool mask, True on the first lengths[b] frames; T = max(lengths) by default."""
    lengths = torch.as_tensor(lengths, device=device).long()
    T = int(lengths.max()) if num_frames is None else num_frames
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_positions(n: int, dim: int, device: torch.device | str | None = None) -> Tensor:
    """[n, dim]: sin on even channels, cos on odd (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def _building_on_meta() -> bool:
    """Inside `with torch.device("meta")`: a model built for its shapes, to be given its weights."""
    return torch.get_default_device().type == "meta"


class MotionCLIP(nn.Module):
    def __init__(self, config: MotionCLIPConfig):
        super().__init__()
        self.config = c = config
        D, W, self.num_feats = c.latent_dim, c.model_width, c.num_joints * 6 + 3

        self.pose_embedding = nn.Linear(self.num_feats, W)
        # The prefix token whose output is z; built on the meta device (shapes only), it draws no random numbers
        # (on meta that would cost a second of imports).
        self.mu_query = nn.Parameter(torch.empty(W) if _building_on_meta() else torch.randn(W))
        self.pos_dropout = nn.Dropout(c.dropout)
        self.query_dropout = nn.Dropout(c.dropout if c.query_dropout < 0 else c.query_dropout)
        if c.normalize:  # the training data's feature statistics, saved with the weights (set_normalization)
            self.register_buffer("feat_mean", torch.zeros(self.num_feats))  # [F]
            self.register_buffer("feat_std", torch.ones(self.num_feats))  # [F]
        # z is the text encoder's size D; narrower layers (W < D) meet it through two projections.
        self.to_latent = nn.Linear(W, D) if W != D else nn.Identity()
        self.from_latent = nn.Linear(D, W) if W != D else nn.Identity()

        def layer(kind):
            return kind(W, c.heads, c.ff_dim, c.dropout, c.activation, batch_first=True, norm_first=c.norm_first)

        # Pre-LN stacks end with a LayerNorm of their own (post-LN layers already end normalised).
        final_norm = (lambda: nn.LayerNorm(W)) if c.norm_first else (lambda: None)
        # No nested tensors: the same numbers whether or not the fast inference path is taken.
        self.encoder = nn.TransformerEncoder(layer(nn.TransformerEncoderLayer), c.enc_layers, norm=final_norm(),
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(layer(nn.TransformerDecoderLayer), c.dec_layers, norm=final_norm())
        self.head = nn.Linear(W, self.num_feats)
        self.derive_buffers()

    def derive_buffers(self, device: torch.device | str | None = None) -> None:
        """(Re)make the buffers computed from the config, which are not saved with the weights: the positional
        encodings and the identity rotation. A model built on the meta device (no random initial values) and
        given its weights with load_state_dict(..., assign=True) calls this to get them, on `device` (default:
        the weights' device)."""
        c = self.config
        device = torch.device(device) if device is not None else self.head.weight.device
        if device.type == "meta":  # shapes only, as the parameters (arithmetic on meta would cost imports)
            positions, identity = torch.empty(c.max_frames, c.model_width, device=device), torch.empty(6, device=device)
        else:
            positions = sinusoidal_positions(c.max_frames, c.model_width, device)
            identity = matrix_to_rot6d(torch.eye(3, device=device))
        self.register_buffer("positions", positions, persistent=False)  # [max_frames, W]
        self.register_buffer("identity_6d", identity, persistent=False)  # [6]

    def set_normalization(self, mean: Tensor, std: Tensor, min_std: float = 0.01) -> None:
        """Store the training data's per-feature mean and std [F] (std floored: constant features stay 0)."""
        if not self.config.normalize:
            raise MotionClipError("this model was built without normalize=True; it keeps no feature statistics")
        if mean.shape != (self.num_feats,) or std.shape != (self.num_feats,):
            raise MotionClipError(f"feature statistics must be [{self.num_feats}], got {list(mean.shape)} and {list(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise MotionClipError("feature statistics hold NaN or infinite values; check the training data")
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp(min=min_std))

    def features(self, rot6d: Tensor, trans: Tensor, normalized: bool = True) -> Tensor:
        """rot6d [B, T, J, 6], trans [B, T, 3] -> the model's per-frame features [B, T, F], z-scored if the
        model normalises (and `normalized`)."""
        x = torch.cat([rot6d.flatten(2), self._root_features(trans)], dim=-1)  # [B, T, F]
        if self.config.normalize and normalized:
            x = (x - self.feat_mean) / self.feat_std
        return x

    def _from_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, F] model features -> rot6d [B, T, J, 6], trans [B, T, 3] (real units)."""
        if self.config.normalize:
            x = x * self.feat_std + self.feat_mean
        rot6d = x[..., :-3].unflatten(-1, (self.config.num_joints, 6))
        return rot6d, self._root_from_features(x[..., -3:])

    def _frame_mask(self, frames: Tensor | Sequence[int] | int, batch: int, device: torch.device) -> Tensor:
        """A [B, T] mask from a mask, per-item lengths, or one length for all; checked."""
        if isinstance(frames, int):
            mask = torch.ones(batch, frames, dtype=torch.bool, device=device)
        elif isinstance(frames, Tensor) and frames.dtype == torch.bool:
            mask = frames.to(device)
        else:
            mask = lengths_to_mask(frames, device=device)
        if mask.dim() != 2 or mask.shape[0] != batch:
            raise MotionClipError(f"the frame mask must be [batch={batch}, frames], got shape {list(mask.shape)}")
        if mask.shape[1] > self.config.max_frames:
            raise MotionClipError(f"{mask.shape[1]} frames is longer than this model's max_frames "
                                  f"({self.config.max_frames}); ask for fewer frames")
        if mask.shape[1] == 0 or not bool(mask.any(dim=1).all()):
            raise MotionClipError("every motion needs at least one frame (a mask row or a length is empty)")
        return mask

    def encode(self, rot6d: Tensor, trans: Tensor, mask: Tensor | None = None) -> Tensor:
        """rot6d [B, T, J, 6], trans [B, T, 3], mask [B, T] (None: all real) -> z [B, D]."""
        mask = self._input_mask(rot6d, trans, mask)
        return self._encode_features(self.features(rot6d, trans), mask)

    def _input_mask(self, rot6d: Tensor, trans: Tensor, mask: Tensor | None) -> Tensor:
        """Check a motion batch's shapes; its [B, T] mask."""
        B, T = rot6d.shape[:2]
        J = self.config.num_joints
        if rot6d.dim() != 4 or rot6d.shape[2:] != (J, 6) or trans.shape != (B, T, 3):
            raise MotionClipError(f"encode expects rot6d [B, T, {J}, 6] and trans [B, T, 3], got "
                                  f"{list(rot6d.shape)} and {list(trans.shape)}")
        mask = self._frame_mask(T if mask is None else mask, B, rot6d.device)
        if mask.shape[1] != T:
            raise MotionClipError(f"the mask covers {mask.shape[1]} frames but the motion has {T}")
        return mask

    def _encode_features(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B, T, F] model features, mask [B, T] -> z [B, D]."""
        B, T = x.shape[:2]
        x = torch.where(mask[..., None], x, torch.zeros_like(x))  # padding may hold anything, even NaN
        x = self.pos_dropout(self.pose_embedding(x) + self.positions[:T])  # [B, T, W]
        x = torch.cat([self.mu_query.expand(B, 1, -1), x], dim=1)  # [B, 1 + T, W]
        keep = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # the prefix token always attends
        out = self.encoder(x, src_key_padding_mask=~keep)  # [B, 1 + T, W]
        return self.to_latent(out[:, 0])  # [B, D]

    # Per-frame displacements are scaled to about metres per second at 30 fps, near unit size.
    VELOCITY_SCALE = 30.0

    def _root_features(self, trans: Tensor) -> Tensor:
        if self.config.root == "absolute":
            return trans
        step = torch.diff(trans, dim=1, prepend=trans[:, :1])  # [B, T, 3], zero on the first frame
        return torch.stack([step[..., 0] * self.VELOCITY_SCALE, trans[..., 1], step[..., 2] * self.VELOCITY_SCALE], -1)

    def _root_from_features(self, feats: Tensor) -> Tensor:
        if self.config.root == "absolute":
            return feats
        xz = torch.cumsum(feats[..., [0, 2]], dim=1) / self.VELOCITY_SCALE
        xz = xz - xz[:, :1]  # the first frame's displacement is zero by construction
        return torch.stack([xz[..., 0], feats[..., 1], xz[..., 1]], -1)

    def decode(self, z: Tensor, frames: Tensor | Sequence[int] | int) -> tuple[Tensor, Tensor]:
        """z [B, D]; frames: a mask [B, T] bool, lengths [B], or one length for all.

        Returns rot6d [B, T, J, 6] and trans [B, T, 3]; padded frames hold the identity and zero.
        """
        return self._decode_features(z, frames)[1:]

    def _decode_features(self, z: Tensor, frames: Tensor | Sequence[int] | int) -> tuple[Tensor, Tensor, Tensor]:
        """z [B, D] -> the head's features [B, T, F] (z-scored if normalize), rot6d, trans (padding: identity, 0)."""
        B = z.shape[0]
        mask = self._frame_mask(frames, B, z.device)
        T = mask.shape[1]
        queries = self.query_dropout(self.positions[:T].expand(B, T, -1))  # [B, T, W]: zeros + positions
        memory = self.from_latent(z)[:, None, :]  # [B, 1, W]
        out = self.decoder(queries, memory, tgt_key_padding_mask=~mask)  # [B, T, W]
        feats = self.head(out)  # [B, T, F]
        rot6d, trans = self._from_features(feats)  # [B, T, J, 6], [B, T, 3]
        rot6d = torch.where(mask[..., None, None], rot6d, self.identity_6d.to(rot6d.dtype))
        trans = torch.where(mask[..., None], trans, torch.zeros_like(trans))
        return feats, rot6d, trans

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The batch format of core/data/windows.py -> z [B, D], rot6d [B, T, J, 6], trans [B, T, 3], and
        the model's own features of the output and of the input, `feats` / `target_feats` [B, T, F]
        (z-scored when the model normalises; the losses on the pose representation use them)."""
        mask = self._input_mask(batch["rot6d"], batch["trans"], batch["mask"])
        target = self.features(batch["rot6d"], batch["trans"])  # [B, T, F]
        z = self._encode_features(target, mask)
        feats, rot6d, trans = self._decode_features(z, mask)
        return {"z": z, "rot6d": rot6d, "trans": trans, "feats": feats, "target_feats": target}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
