"""The text-motion matching model that judges generated motions (HumanML3D-evaluator / TMR style).

It is trained by the project (`motionclip train evaluator`) on the train split, with nothing
shared with the models it judges: its own word-level text encoder learned from scratch (a
vocabulary of the training texts, word embeddings, a bidirectional GRU; no pretrained text model,
so neither MiniLM, CLIP nor a MoCLIP student gets a home advantage) and its own motion encoder
(joint positions and velocities from forward kinematics, a per-frame MLP, a transformer over the
real frames, masked mean pooling). Both map into a small space (64-d by default, so that FID's
covariances stay meaningful on a small test split) and are trained with a symmetric InfoNCE loss
in which pairs of the same clip or the same text are not counted as negatives.

Embeddings are L2-normalised; the standard metrics use Euclidean distances between them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MotionClipError, check_fields
from ..skeleton import Skeleton, neutral_skeleton
from .moclip import joint_features
from .motionclip import sinusoidal_positions

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+")


def words(text: str) -> list[str]:
    """Lower-case word tokens: "Someone side-steps, twice!" -> ["someone", "side", "steps", "twice"]."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Sequence[str], min_count: int = 1) -> list[str]:
    counts: dict[str, int] = {}
    for t in texts:
        for w in words(t):
            counts[w] = counts.get(w, 0) + 1
    return [PAD, UNK] + sorted(w for w, c in counts.items() if c >= min_count)


@dataclass
class EvaluatorConfig:
    dim: int = 64  # the shared embedding size
    word_dim: int = 96
    text_hidden: int = 96  # GRU hidden size per direction
    motion_width: int = 128
    motion_layers: int = 2
    heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    max_frames: int = 1000
    max_words: int = 40
    fps: float = 30.0
    vocab: list[str] = field(default_factory=lambda: [PAD, UNK])

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise MotionClipError(f"evaluator config: {f.name} must be a positive integer, got {v!r}")
        if self.motion_width % self.heads:
            raise MotionClipError(f"evaluator config: motion_width {self.motion_width} must be divisible by heads {self.heads}")
        if not isinstance(self.vocab, list) or self.vocab[:2] != [PAD, UNK]:
            raise MotionClipError("evaluator config: vocab must be a list starting with <pad>, <unk>")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvaluatorConfig":
        check_fields(cls, d, "evaluator config")
        return cls(**d)


class TextMotionEvaluator(nn.Module):
    def __init__(self, config: EvaluatorConfig, skeleton: Skeleton | None = None) -> None:
        super().__init__()
        self.config = c = config
        self.skeleton = skeleton or neutral_skeleton()
        self.word_index = {w: i for i, w in enumerate(c.vocab)}
        # text
        self.word_embedding = nn.Embedding(len(c.vocab), c.word_dim, padding_idx=0)
        self.gru = nn.GRU(c.word_dim, c.text_hidden, batch_first=True, bidirectional=True)
        self.text_proj = nn.Sequential(nn.Linear(2 * c.text_hidden, c.text_hidden), nn.GELU(), nn.Linear(c.text_hidden, c.dim))
        # motion: local joint positions + velocities (24 * 3 each) per frame
        self.frame_in = nn.Sequential(nn.Linear(2 * 24 * 3, c.motion_width), nn.GELU(), nn.Linear(c.motion_width, c.motion_width))
        self.register_buffer("positions", sinusoidal_positions(c.max_frames, c.motion_width), persistent=False)
        self.motion_encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(c.motion_width, c.heads, c.ff_dim, c.dropout, "gelu", batch_first=True,
                                       norm_first=True), c.motion_layers, enable_nested_tensor=False)
        self.motion_proj = nn.Sequential(nn.LayerNorm(c.motion_width), nn.Linear(c.motion_width, c.dim))

    @property
    def device(self) -> torch.device:
        return self.word_embedding.weight.device

    def tokenize(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """texts -> token ids [N, L] (0 = padding), lengths [N] (at least 1: an empty text is one <unk>)."""
        ids = [[self.word_index.get(w, 1) for w in words(t)][: self.config.max_words] or [1] for t in texts]
        L = max(len(x) for x in ids)
        out = torch.zeros(len(ids), L, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
        return out, torch.tensor([len(x) for x in ids])

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """texts -> [N, dim], rows of norm 1."""
        if not texts:
            return torch.zeros(0, self.config.dim, device=self.device)
        ids, lengths = self.tokenize(texts)
        x = self.word_embedding(ids.to(self.device))  # [N, L, word_dim]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # [N, L, 2H]
        mask = (ids != 0).to(self.device)[..., None]
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def encode_motion(self, rot6d: Tensor, trans: Tensor, mask: Tensor) -> Tensor:
        """The batch format of core/data/windows.py (canonicalised windows) -> [B, dim], rows of norm 1."""
        B, T = rot6d.shape[:2]
        if T > self.config.max_frames:
            raise MotionClipError(f"{T} frames is longer than the evaluator's max_frames ({self.config.max_frames})")
        rot6d, trans, mask = rot6d.to(self.device), trans.to(self.device), mask.to(self.device)
        pos, vel = joint_features(rot6d, trans, mask, self.skeleton, self.config.fps)
        local = pos - pos[:, :, :1] * pos.new_tensor([1.0, 0.0, 1.0])  # relative to the root's ground point
        x = torch.cat([local.flatten(2), vel.flatten(2) / 3.0], dim=-1)  # [B, T, 144]
        x = self.frame_in(x) + self.positions[:T]
        x = self.motion_encoder(x, src_key_padding_mask=~mask)
        m = mask[..., None].to(x.dtype)
        x = torch.where(mask[..., None], x, torch.zeros_like(x))
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(self.motion_proj(pooled), dim=-1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def matching_loss(motion: Tensor, text: Tensor, texts: Sequence[str], clip_ids: Sequence[str],
                  temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE over the B x B cosine logits; off-diagonal pairs from the same clip or with the
    same text are left out of the negatives (they describe the same motion)."""
    logits = motion @ text.T / temperature  # [B, B]
    B = logits.shape[0]
    same = torch.tensor([[i != j and (texts[i] == texts[j] or clip_ids[i] == clip_ids[j]) for j in range(B)]
                         for i in range(B)], device=logits.device)
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(B, device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
