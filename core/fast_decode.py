"""An exact shortcut through MotionCLIP's decoder for inference.

The decoder's queries are positional encodings only, and its memory is the single latent token.
Two things follow, exactly: (1) cross-attention over one key gives that key's value to every
query (the softmax of one logit is 1), so it is out_proj(v_proj(z)), computed once per motion
instead of per frame; (2) the first layer's self-attention block sees the same queries for every
request of a given length, so its output is computed once per length and kept (LRU). Everything
else runs the layers' own code. About a third less arithmetic per generation.

`FastDecoder.verified(model)` checks the shortcut against `model.decode` on random latents and
gives None (use the model's own decode) if the model is not a decoder of this kind (post- or
pre-LayerNorm) or the two disagree. Given the SHA-256 of the model's weights file (checked when it
was loaded), a passed check is recorded in the user's cache folder (core/files.py user_cache_dir,
fast-decode/), keyed by that SHA-256, the model config, the torch version, the device, the dtype and
the SHA-256 of this module's and the model module's source; the next start with the same key skips
the check, and any change to one of them checks again. A failed check is never recorded.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FastDecoder:
    def __init__(self, model, cache_size: int = 32):
        self.model = model
        self.layers = list(model.decoder.layers)
        self.final_norm = model.decoder.norm
        self.cache_size = cache_size
        self._first: OrderedDict[int, Tensor] = OrderedDict()  # length -> [n, D] after layer 1's norm1
        self._lock = threading.Lock()

    @classmethod
    def verified(cls, model, tol: float = 1e-4, weights_sha256: str | None = None) -> "FastDecoder | None":
        """The shortcut for `model`, or None where it does not apply or disagrees with model.decode.
        weights_sha256: the SHA-256 of the file the weights were loaded from (and checked against), to
        record a passed check and skip it at the next start (see the module's docstring)."""
        layers = getattr(getattr(model, "decoder", None), "layers", None)
        if layers is None or model.training or not all(
                isinstance(l, nn.TransformerDecoderLayer) and l.multihead_attn.batch_first
                and l.multihead_attn._qkv_same_embed_dim for l in layers):
            return None
        key = verification_key(model, tol, weights_sha256) if weights_sha256 else None
        if key is not None and _recorded(key):
            return cls(model)
        fast = cls._checked(model, tol)
        if fast is not None and key is not None:
            _record(key)
        return fast

    @classmethod
    def _checked(cls, model, tol: float) -> "FastDecoder | None":
        """The shortcut if it gives model.decode's output (within tol) on random latents and mixed lengths."""
        fast = cls(model)
        try:
            with torch.inference_mode():
                z = torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(0)) * 10
                z = z.to(next(model.parameters()).device)
                for lengths in ([7, 7, 7], [12, 5, 1]):
                    ref = model.decode(z, torch.tensor(lengths))
                    got = fast.decode(z, torch.tensor(lengths))
                    if any(not torch.allclose(a, b, atol=tol, rtol=tol) for a, b in zip(ref, got)):
                        return None
        except Exception:
            return None
        fast._first.clear()
        return fast

    def _first_block(self, n: int) -> Tensor:
        with self._lock:
            x = self._first.get(n)
            if x is not None:
                self._first.move_to_end(n)
                return x
        layer = self.layers[0]
        q = self.model.positions[:n][None]  # [1, n, W]
        if layer.norm_first:
            x = (q + layer._sa_block(layer.norm1(q), None, None))[0]  # [n, W]
        else:
            x = layer.norm1(q + layer._sa_block(q, None, None))[0]  # [n, W]
        with self._lock:
            self._first[n] = x
            while len(self._first) > self.cache_size:
                self._first.popitem(last=False)
        return x

    @staticmethod
    def _cross(layer: nn.TransformerDecoderLayer, z: Tensor) -> Tensor:
        """Cross-attention of any query over the one memory token z [B, W] -> [B, 1, W]."""
        mha = layer.multihead_attn
        D = z.shape[-1]
        w, b = mha.in_proj_weight[2 * D:], None if mha.in_proj_bias is None else mha.in_proj_bias[2 * D:]
        return mha.out_proj(F.linear(z, w, b))[:, None, :]

    @torch.inference_mode()
    def decode(self, z: Tensor, frames: Tensor | Sequence[int] | int) -> tuple[Tensor, Tensor]:
        model = self.model
        B = z.shape[0]
        mask = model._frame_mask(frames, B, z.device)  # [B, T]
        T = mask.shape[1]
        lengths = mask.sum(1).tolist()
        memory = model.from_latent(z)  # [B, W]
        x = torch.zeros(B, T, memory.shape[-1], dtype=z.dtype, device=z.device)
        for n in set(lengths):
            rows = [i for i, m in enumerate(lengths) if m == n]
            x[rows, :n] = self._first_block(int(n))
        for k, layer in enumerate(self.layers):
            if layer.norm_first:  # x + block(norm(x)); cross-attention reads the memory as it is
                if k > 0:
                    x = x + layer._sa_block(layer.norm1(x), None, ~mask)
                x = x + self._cross(layer, memory)
                x = x + layer._ff_block(layer.norm3(x))
            else:
                if k > 0:
                    x = layer.norm1(x + layer._sa_block(x, None, ~mask))
                x = layer.norm2(x + self._cross(layer, memory))
                x = layer.norm3(x + layer._ff_block(x))
        if self.final_norm is not None:
            x = self.final_norm(x)
        rot6d, trans = model._from_features(model.head(x))  # [B, T, J, 6], [B, T, 3]
        rot6d = torch.where(mask[..., None, None], rot6d, model.identity_6d.to(rot6d.dtype))
        trans = torch.where(mask[..., None], trans, torch.zeros_like(trans))
        return rot6d, trans


def verification_key(model, tol: float, weights_sha256: str) -> dict[str, Any]:
    """Everything a passed check depends on: the weights, the model's config, the torch version, where and
    in what precision it runs, the tolerance, and the code of both decoders."""
    p = next(model.parameters())
    sources = sorted({__name__, type(model).__module__})
    code = hashlib.sha256(b"".join(Path(sys.modules[m].__file__).read_bytes() for m in sources)).hexdigest()
    return {"weights_sha256": weights_sha256, "model": model.config.to_dict(), "torch": torch.__version__,
            "device": p.device.type, "dtype": str(p.dtype), "tol": tol, "code_sha256": code}


def record_path(key: dict[str, Any]) -> Path:
    from .files import user_cache_dir

    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return user_cache_dir() / "fast-decode" / f"{name}.json"


def _recorded(key: dict[str, Any]) -> bool:
    """A passed check of this key was recorded (an unreadable or different record counts as none)."""
    try:
        return json.loads(record_path(key).read_text()) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        return False


def _record(key: dict[str, Any]) -> None:
    """Record a passed check; where the cache folder cannot be written, the next start checks again."""
    from .files import atomic_write_text

    try:
        atomic_write_text(record_path(key), json.dumps(key, sort_keys=True, indent=1))
    except OSError:
        pass
