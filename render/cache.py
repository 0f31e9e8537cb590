"""The rendered-frame CLIP image embedding cache of a dataset directory (what the trainer reads).

    DATASET/cache/images-<encoder>-<visual fingerprint>-<settings hash>/
        settings.json                 how the frames were chosen and rendered
        clips/<clip id>.safetensors   frames int64 [M] (the clip's frame numbers),
                                      embeddings float32 [M, D], mirrored float32 [M, D] (the same
                                      frames of the left/right mirrored clip); metadata: the clip
                                      file's content hash, the settings hash
        COMPLETE.json                 written last, once every clip of the dataset has its file:
                                      encoder, fingerprint, dim, settings, {clip id: content hash}

The folder name carries the image tower's content hash and the render settings, so a changed
encoder or setting reads and writes another folder. Every file is written atomically. A cache is
used only when COMPLETE.json exists and matches the dataset's clips now (ids and content hashes):
an interrupted run, a failed clip or a clip added later leaves no cache that looks complete.
Importing this module imports no renderer.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from motionclip.core.encoders.cache import CACHE_DIR, slug
from motionclip.core.files import atomic_write_bytes, atomic_write_text

FORMAT = "motionclip-image-embeddings"
VERSION = 1
COMPLETE = "COMPLETE.json"
SETTINGS = "settings.json"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def cache_folder(dataset: str | Path, encoder_name: str, image_fingerprint: str, settings: dict[str, Any]) -> Path:
    return Path(dataset) / CACHE_DIR / f"images-{slug(encoder_name)}-{image_fingerprint}-{settings_hash(settings)}"


def clip_hashes(dataset: str | Path) -> dict[str, str]:
    """{clip id: content hash of its file} for every clip of the dataset's index."""
    from motionclip.core.data.dataset_dir import DatasetIndex

    index = DatasetIndex.load(dataset)
    return {e["id"]: file_hash(index.clip_path(e["id"])) for e in index.entries()}


def write_clip(folder: Path, clip_id: str, content_hash: str, frames: list[int], embeddings: Tensor,
               mirrored: Tensor | None, settings: dict[str, Any]) -> Path:
    from safetensors.torch import save

    tensors = {"frames": torch.tensor(frames, dtype=torch.int64), "embeddings": embeddings.float().contiguous()}
    if mirrored is not None:
        tensors["mirrored"] = mirrored.float().contiguous()
    meta = {"format": FORMAT, "clip": clip_id, "content": content_hash, "settings": settings_hash(settings)}
    path = folder / "clips" / f"{clip_id}.safetensors"
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def read_clip(folder: Path, clip_id: str, content_hash: str | None = None,
              settings: dict[str, Any] | None = None) -> dict[str, Tensor] | None:
    """A clip's cached embeddings, or None when absent, unreadable or for other content / settings."""
    from safetensors import safe_open

    path = folder / "clips" / f"{clip_id}.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            out = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:
        return None
    if meta.get("format") != FORMAT or meta.get("clip") != clip_id:
        return None
    if content_hash is not None and meta.get("content") != content_hash:
        return None
    if settings is not None and meta.get("settings") != settings_hash(settings):
        return None
    if "frames" not in out or "embeddings" not in out or out["embeddings"].shape[0] != out["frames"].shape[0]:
        return None
    return out


def mark_complete(folder: Path, encoder_name: str, image_fingerprint: str, dim: int, settings: dict[str, Any],
                  hashes: dict[str, str]) -> Path:
    """Write COMPLETE.json, after checking that every clip's file is there and matches."""
    missing = [cid for cid, h in hashes.items() if read_clip(folder, cid, h, settings) is None]
    if missing:
        raise RuntimeError(f"{len(missing)} clip(s) have no valid embeddings (first: {missing[0]}); not complete")
    info = {"format": FORMAT, "version": VERSION, "encoder": encoder_name, "fingerprint": image_fingerprint,
            "dim": int(dim), "settings": settings, "clips": hashes}
    atomic_write_text(folder / COMPLETE, json.dumps(info, indent=1, sort_keys=True))
    return folder / COMPLETE


def find_complete(dataset: str | Path, encoder_name: str, image_fingerprint: str,
                  hashes: dict[str, str] | None = None) -> Path | None:
    """The newest complete cache folder for this encoder that matches the dataset's clips now."""
    root = Path(dataset) / CACHE_DIR
    if not root.is_dir():
        return None
    hashes = clip_hashes(dataset) if hashes is None else hashes
    found = []
    for marker in root.glob(f"images-{slug(encoder_name)}-{image_fingerprint}-*/{COMPLETE}"):
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (info.get("format") == FORMAT and info.get("encoder") == encoder_name
                and info.get("fingerprint") == image_fingerprint and info.get("clips") == hashes):
            found.append((marker.stat().st_mtime, marker.parent))
    return max(found)[1] if found else None


class ImageEmbeddings:
    """A complete cache in memory: the image embedding for a training window.

    For a window [start, start + length) of a clip, the cached frame inside the window nearest to its
    middle ("middle" policy) or one of the cached frames inside it chosen by a hash of the window and
    the epoch ("random:K"); a window holding no cached frame takes the nearest one.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        info = json.loads((self.folder / COMPLETE).read_text())
        self.settings = info["settings"]
        self.dim = int(info["dim"])
        self.encoder = info["encoder"]
        self.random = str(self.settings.get("policy", "middle")).startswith("random")
        self.clips: dict[str, dict[str, Tensor]] = {}
        for cid, h in info["clips"].items():
            data = read_clip(self.folder, cid, h, self.settings)
            if data is None:  # changed under our feet since the marker was written
                raise RuntimeError(f"{self.folder}: the embeddings of clip {cid} are missing or stale; "
                                   f"run `motionclip embed-frames` again")
            self.clips[cid] = data

    def __len__(self) -> int:
        return len(self.clips)

    def lookup(self, clip_id: str, start: int, length: int, mirrored: bool = False, epoch: int = 0) -> Tensor:
        data = self.clips[clip_id]
        frames = data["frames"]
        inside = ((frames >= start) & (frames < start + length)).nonzero().flatten()
        if len(inside) == 0:
            k = int((frames - (start + length // 2)).abs().argmin())
        elif self.random:
            k = int(inside[random.Random(f"{clip_id}:{start}:{length}:{int(mirrored)}:{epoch}").randrange(len(inside))])
        else:
            k = int(inside[(frames[inside] - (start + length // 2)).abs().argmin()])
        table = data["mirrored"] if mirrored and "mirrored" in data else data["embeddings"]
        return table[k]

    def batch(self, batch: dict[str, Any], epoch: int = 0) -> Tensor:
        """[B, D] for a collated batch (needs clip_id, start, length, mirrored)."""
        starts = batch.get("start")
        if starts is None:
            starts = [0] * len(batch["clip_id"])
        mirrored = batch.get("mirrored")
        rows = [self.lookup(cid, int(s), int(n), bool(mirrored[i]) if mirrored is not None else False, epoch)
                for i, (cid, s, n) in enumerate(zip(batch["clip_id"], starts, batch["length"]))]
        return torch.stack(rows)


def load_for_training(dataset: str | Path, encoder) -> tuple[ImageEmbeddings | None, str]:
    """The complete image-embedding cache of `dataset` for `encoder`, or None and the reason it is off."""
    if not getattr(encoder, "has_image", False):
        return None, f"text encoder {encoder.name} has no image tower"
    fp = encoder.image_fingerprint
    folder = find_complete(dataset, encoder.name, fp)
    if folder is None:
        return None, (f"no complete image-embedding cache for {encoder.name} ({fp}) in {Path(dataset) / CACHE_DIR}; "
                      f"create one with: motionclip embed-frames --data {dataset} --encoder {encoder.name}")
    try:
        emb = ImageEmbeddings(folder)
    except (RuntimeError, OSError, KeyError, json.JSONDecodeError) as exc:
        warnings.warn(f"image-embedding cache {folder} unusable: {exc}")
        return None, f"the cache {folder} is unusable ({exc})"
    if emb.dim != encoder.dim:
        return None, f"the cache {folder} holds {emb.dim}-d embeddings, the encoder makes {encoder.dim}-d"
    return emb, f"{len(emb)} clips from {folder}"
