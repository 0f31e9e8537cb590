"""Text embeddings computed once per (encoder, text) and kept on disk.

    ROOT/text-<slug(encoder name)>-<encoder fingerprint>.safetensors
        tensor "embeddings": float32 [M, D], row i = the embedding of texts[i]
        metadata: format, version, encoder, fingerprint, dim, texts (a JSON list of the M texts)

The file name carries the encoder's name and content hash, so a different or changed encoder
reads and writes a different file: stale embeddings are never served. No pickle anywhere;
writes go to a temporary file that replaces the old one in one step.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import Tensor

from ..files import atomic_write_bytes
from .base import TextEncoder, check_texts

FORMAT = "motionclip-text-embeddings"
VERSION = "1"
CACHE_DIR = "cache"  # inside a dataset directory


def slug(name: str) -> str:
    """File-name-safe form of an encoder name: "clip:ViT-B/32" -> "clip-ViT-B-32"."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.") or "encoder"


class TextEmbeddingCache:
    """Embeddings of unique texts for one encoder; `get` computes only what is missing."""

    def __init__(self, root: str | Path, encoder: TextEncoder, batch_size: int = 64) -> None:
        self.root = Path(root)
        self.encoder = encoder
        self.batch_size = batch_size
        self.path = self.root / f"text-{slug(encoder.name)}-{encoder.fingerprint}.safetensors"
        self._texts: list[str] = []
        self._index: dict[str, int] = {}
        self._emb = torch.zeros(0, encoder.dim, dtype=torch.float32)  # [M, D]
        self._dirty = False
        if self.path.is_file():
            self._load()

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, text: object) -> bool:
        return text in self._index

    @property
    def texts(self) -> list[str]:
        return list(self._texts)

    def _load(self) -> None:
        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta: dict[str, Any] = f.metadata() or {}
                emb = f.get_tensor("embeddings").float().clone()  # [M, D]
            texts = json.loads(meta["texts"])
            ok = (meta.get("format") == FORMAT and meta.get("encoder") == self.encoder.name
                  and meta.get("fingerprint") == self.encoder.fingerprint
                  and emb.shape == (len(texts), self.encoder.dim) and len(set(texts)) == len(texts))
        except Exception as exc:  # a cache: an unreadable file is recomputed, not fatal
            warnings.warn(f"{self.path}: unreadable embedding cache ({type(exc).__name__}: {exc}); recomputing")
            return
        if not ok:
            warnings.warn(f"{self.path}: embedding cache does not match encoder {self.encoder.name} "
                          f"({self.encoder.fingerprint}); recomputing")
            return
        self._texts, self._emb = texts, emb
        self._index = {t: i for i, t in enumerate(texts)}

    def get(self, texts: list[str], progress: bool = False) -> Tensor:
        """texts (N, repeats allowed) -> float32 [N, D]; encodes each missing unique text once, in batches."""
        texts = check_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._index))  # unique, first-seen order
        if missing:
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=len(missing), desc=f"text embeddings ({self.encoder.name})", unit="text")
            parts = []
            for i in range(0, len(missing), self.batch_size):
                chunk = missing[i:i + self.batch_size]
                parts.append(self.encoder.encode_text(chunk, batch_size=self.batch_size).detach().float().cpu())
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
            base = len(self._texts)
            self._emb = torch.cat([self._emb, *parts])  # [M + new, D]
            self._texts.extend(missing)
            self._index.update((t, base + i) for i, t in enumerate(missing))
            self._dirty = True
        if not texts:
            return torch.zeros(0, self.encoder.dim, dtype=torch.float32)
        return self._emb[torch.tensor([self._index[t] for t in texts])]  # [N, D]

    def save(self) -> Path:
        """Write the cache (atomically: a reader sees the old file or the new one, never half)."""
        meta = {"format": FORMAT, "version": VERSION, "encoder": self.encoder.name,
                "fingerprint": self.encoder.fingerprint, "dim": str(self.encoder.dim),
                "texts": json.dumps(self._texts, ensure_ascii=False)}
        atomic_write_bytes(self.path, st_save({"embeddings": self._emb.contiguous()}, metadata=meta))
        self._dirty = False
        return self.path


def cache_dataset_texts(dataset_dir: str | Path, encoder: TextEncoder, batch_size: int = 64,
                        progress: bool = True) -> TextEmbeddingCache:
    """Embed every text of every clip of a dataset directory into DATASET/cache/ (saved as it goes)."""
    from ..data.dataset_dir import DatasetIndex

    index = DatasetIndex.load(dataset_dir)
    texts = list(dict.fromkeys(t for entry in index.entries() for t in entry["texts"]))
    cache = TextEmbeddingCache(Path(dataset_dir) / CACHE_DIR, encoder, batch_size=batch_size)
    todo = [t for t in texts if t not in cache]
    step = batch_size * 32  # save every 32 batches: an interrupted run keeps what it computed
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc=f"text embeddings ({encoder.name})", unit="text")
    for i in range(0, len(todo), step):
        cache.get(todo[i:i + step])
        cache.save()
        if bar is not None:
            bar.update(len(todo[i:i + step]))
    if bar is not None:
        bar.close()
    if not cache.path.is_file():
        cache.save()
    return cache
