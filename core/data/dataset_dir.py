"""The canonical dataset directory: one `.motion` file per clip plus an index.

    DIR/index.json          {"format": "motionclip-dataset", "version": 1, "fps": 30, "clips": [...]}
    DIR/clips/<id>.motion   one clip each (SMPL rotations, canonicalised, at the dataset fps)

Each index entry: id, source (the file it came from), format, fps, frames, texts (one or more
phrasings), split ("train" / "val" / "test", decided by the clip id alone, so every window
of a clip lands in the same split), and what the import measured (retarget error).
The index is written last and atomically: a dataset is complete exactly when index.json
lists a clip; an interrupted import never leaves a half-written index.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import MotionClipError, read_json
from ..files import atomic_write_text
from ..motion import MOTION_SUFFIX, Motion

INDEX_NAME = "index.json"
CLIPS_DIR = "clips"
FORMAT = "motionclip-dataset"
DEFAULT_SPLITS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "val", "test")


class DatasetError(MotionClipError):
    pass


def split_for(clip_id: str, ratios: tuple[float, float, float] = DEFAULT_SPLITS, seed: int = 0) -> str:
    """Deterministic split from the clip id (and a seed): the same clip always lands in the same split."""
    h = hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    total = sum(ratios)
    acc = 0.0
    for name, r in zip(SPLIT_NAMES, ratios):
        acc += r / total
        if u < acc:
            return name
    return SPLIT_NAMES[-1]


def safe_id(text: str) -> str:
    """A file-system-safe clip id."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return s or "clip"


@dataclass
class DatasetIndex:
    root: Path
    fps: float = 30.0
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> "DatasetIndex":
        root = Path(root)
        path = root / INDEX_NAME
        if not path.is_file():
            raise DatasetError(f"{root}: not a dataset (no {INDEX_NAME}); create one with `motionclip data import` "
                               f"or `motionclip data synth`")
        data = read_json(path, DatasetError)
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("clips"), list):
            raise DatasetError(f"{path}: not a motionclip dataset index (expected \"format\": \"{FORMAT}\" and a clips list)")
        clips: dict[str, dict[str, Any]] = {}
        for i, c in enumerate(data["clips"]):
            missing = [k for k in ("id", "texts", "split", "frames") if k not in c]
            if missing:
                raise DatasetError(f"{path}: clips[{i}] lacks {', '.join(missing)}")
            clips[c["id"]] = c
        return cls(root=root, fps=float(data.get("fps", 30.0)), clips=clips)

    @classmethod
    def open_or_create(cls, root: str | Path, fps: float = 30.0) -> "DatasetIndex":
        root = Path(root)
        if (root / INDEX_NAME).exists():
            index = cls.load(root)
            if abs(index.fps - fps) > 1e-6:
                raise DatasetError(f"{root} holds clips at {index.fps:g} fps; add to it at the same --fps or use a new folder")
            return index
        return cls(root=root, fps=fps)

    def save(self) -> None:
        data = {"format": FORMAT, "version": 1, "fps": self.fps,
                "clips": [self.clips[k] for k in sorted(self.clips)]}
        atomic_write_text(self.root / INDEX_NAME, json.dumps(data, indent=1))

    def clip_path(self, clip_id: str) -> Path:
        return self.root / CLIPS_DIR / f"{clip_id}{MOTION_SUFFIX}"

    def add(self, clip_id: str, motion: Motion, texts: list[str], source: str = "", split: str | None = None,
            **extra: Any) -> dict[str, Any]:
        """Write one clip file (atomically) and record it; call save() to publish the index."""
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise DatasetError(f"clip {clip_id!r}: needs at least one non-empty text")
        clip_id = safe_id(clip_id)
        motion.save(self.clip_path(clip_id))
        entry = {"id": clip_id, "source": source, "fps": motion.fps, "frames": motion.num_frames,
                 "texts": [t.strip() for t in texts], "split": split or split_for(clip_id), **extra}
        self.clips[clip_id] = entry
        return entry

    def unique_id(self, base: str, source: str) -> str:
        """`base`, or base plus a suffix when another source already uses it."""
        cid = safe_id(base)
        n = 2
        while cid in self.clips and self.clips[cid].get("source") != source:
            cid = f"{safe_id(base)}_{n}"
            n += 1
        return cid

    def entries(self, split: str | None = None) -> Iterator[dict[str, Any]]:
        for cid in sorted(self.clips):
            c = self.clips[cid]
            if split is None or c["split"] == split:
                yield c

    def load_clip(self, clip_id: str) -> Motion:
        return Motion.load(self.clip_path(clip_id))
