"""The one interface every text (and image) encoder implements.

    enc.name            "minilm", "clip:ViT-B/32", "clip-random:tiny", ...
    enc.dim             output size D
    enc.fingerprint     16 hex of sha256 over the weights (which encoder, by content)
    enc.encode_text(["a person walks", ...])      -> float32 [N, D], rows of norm 1, on CPU
    enc.encode_image(images [N, 3, H, W] in [0,1]) -> float32 [N, D]   (only where enc.has_image)

Encoders are frozen (requires_grad False, eval mode) unless a caller calls `unfreeze()`;
a frozen encoder stays in eval mode even when a parent module calls `.train()` (MiniLM has
dropout), and runs under no_grad, so its outputs are plain constant tensors.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MotionClipError

DEFAULT_BATCH = 256


class EncoderError(MotionClipError):
    """An encoder could not be loaded, or was given input it cannot encode."""


def check_texts(texts: Any) -> list[str]:
    """The texts as a list of non-empty strings, or EncoderError naming the first bad item."""
    if isinstance(texts, (str, bytes)):
        raise EncoderError(f"texts must be a list of strings, not a single {type(texts).__name__} "
                           f"({texts!r:.60}); wrap it: [text]")
    if not isinstance(texts, Sequence):
        raise EncoderError(f"texts must be a list of strings, not {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EncoderError(f"texts[{i}] is {type(t).__name__} ({t!r:.60}), not a string")
        if not t.strip():
            raise EncoderError(f"texts[{i}] is empty ({t!r}); every text needs at least one word")
    return list(texts)


def hash_tensors(items: Iterable[tuple[str, Tensor]]) -> str:
    """First 16 hex of sha256 over (key, shape, bytes) in the given order.

    Floating tensors are hashed as float32, so the same weights held in fp16 on a GPU and in
    fp32 on a CPU get the same fingerprint."""
    h = hashlib.sha256()
    for key, t in items:
        t = t.detach()
        if t.is_floating_point():
            t = t.float()
        t = t.cpu().contiguous().reshape(-1)
        h.update(f"{key}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.view(torch.uint8).numpy()) if t.numel() else b"")  # the bytes in place, no copy
    return h.hexdigest()[:16]


class TextEncoder(nn.Module):
    """Base class. Subclasses set `name`, `dim` and implement `_encode_text` (and `_encode_image`)."""

    name: str = "text-encoder"
    dim: int = 0

    def __init__(self) -> None:
        super().__init__()
        self._fp_key: tuple | None = None  # (id, version) of every weight when the fingerprint was taken
        self._fp: str | None = None

    # ---- what subclasses implement -------------------------------------------------------
    def _encode_text(self, texts: list[str]) -> Tensor:
        """Raw (unnormalised) embeddings [N, D] for N >= 1 validated texts, on self.device."""
        raise NotImplementedError

    def _encode_image(self, images: Tensor) -> Tensor:
        """Raw embeddings [N, D] for images [N, 3, H, W] float32 in [0, 1], on self.device."""
        raise EncoderError(f"text encoder {self.name!r} has no image tower; "
                           f"image embeddings need a CLIP encoder (e.g. clip:ViT-B/32)")

    def _fingerprint_items(self) -> Iterable[tuple[str, Tensor]]:
        """The weights that define this encoder's output (default: the whole state dict)."""
        return self.state_dict(keep_vars=True).items()  # the tensors themselves: stable ids and versions

    @property
    def has_image(self) -> bool:
        return False

    # ---- frozen unless unfrozen ----------------------------------------------------------
    def freeze(self) -> "TextEncoder":
        self.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> "TextEncoder":
        """Make the weights trainable (a MoCLIP student): gradients flow through encode_text."""
        self.requires_grad_(True)
        return self.train()

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True) -> "TextEncoder":
        # A frozen encoder stays in eval mode when its parent model calls .train().
        return super().train(mode and self.trainable)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        return torch.device("cpu")

    # ---- identity ------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Content hash of the weights; recomputed only when a weight tensor was replaced or changed in place."""
        items = list(self._fingerprint_items())
        key = tuple((k, id(t), getattr(t, "_version", 0)) for k, t in items)
        if self._fp is None or key != self._fp_key:
            self._fp, self._fp_key = hash_tensors(items), key
        return self._fp

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records about the encoder it was trained with."""
        return {"name": self.name, "dim": int(self.dim), "fingerprint": self.fingerprint}

    def check_identity(self, expected: dict[str, Any], what: str = "this checkpoint") -> None:
        """Refuse to pair with a checkpoint trained on a different encoder."""
        mine = self.identity()
        diff = [k for k in ("name", "dim", "fingerprint") if k in expected and expected[k] != mine[k]]
        if diff == ["name"] and "fingerprint" in expected and \
                str(expected["name"]).partition(":")[0] == mine["name"].partition(":")[0]:
            diff = []  # the same weights under another label (e.g. a MoCLIP run's folder renamed): same content
        if diff:
            want = ", ".join(f"{k}={expected[k]!r}" for k in ("name", "dim", "fingerprint") if k in expected)
            have = ", ".join(f"{k}={mine[k]!r}" for k in ("name", "dim", "fingerprint"))
            raise EncoderError(f"{what} was trained with text encoder {want}, but the loaded encoder is {have}; "
                               f"load the same encoder (same weights file) it was trained with")

    # ---- encoding ------------------------------------------------------------------------
    def encode_text(self, texts: list[str], *, batch_size: int = DEFAULT_BATCH, to_cpu: bool = True) -> Tensor:
        """texts (N strings) -> float32 [N, D], each row of norm 1; on CPU unless to_cpu=False."""
        texts = check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim, dtype=torch.float32, device="cpu" if to_cpu else self.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            parts = [self._encode_text(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
            out = F.normalize(torch.cat(parts).float(), dim=-1)  # [N, D]
        return out.cpu() if to_cpu else out

    def encode_image(self, images: Tensor, *, batch_size: int = 64, to_cpu: bool = True) -> Tensor:
        """images float [N, 3, H, W] in [0, 1] (uint8 0..255 accepted) -> float32 [N, D], rows of norm 1."""
        if not self.has_image:
            self._encode_image(images)  # raises the encoder's own "no image tower" message
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise EncoderError(f"images must be a tensor [N, 3, H, W] (RGB, values in [0, 1]); got {shape}")
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if images.shape[0] == 0:
            return torch.zeros(0, self.dim, dtype=torch.float32, device="cpu" if to_cpu else self.device)
        images = images.to(self.device, torch.float32)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            parts = [self._encode_image(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
            out = F.normalize(torch.cat(parts).float(), dim=-1)  # [N, D]
        return out.cpu() if to_cpu else out

    def forward(self, texts: list[str]) -> Tensor:
        return self.encode_text(texts, to_cpu=False)

    def __repr__(self) -> str:  # short: not the whole module tree
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, has_image={self.has_image})"
