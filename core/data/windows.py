"""A torch Dataset of motion windows from a dataset directory, and the one batch format.

Batch (from `collate_motion`):
    rot6d   [B, T, 24, 6]  local joint rotations, 6D (padded with the identity)
    trans   [B, T, 3]      root translation, window canonicalised (starts at the origin facing +Z)
    mask    [B, T] bool    True on real frames
    length  [B]            real frames per item
    text    list[str]      one of the clip's texts (left/right swapped when mirrored)
    clip_id list[str]
    start   [B]            first frame of each window in its clip (for per-frame caches)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..motion import Motion
from ..skeleton import Skeleton, neutral_skeleton
from .dataset_dir import DatasetError, DatasetIndex
from .texts import mirror_text

_IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass
class _Window:
    clip: int
    start: int
    length: int


class MotionWindows(Dataset):
    """Windows of the clips of one split.

    window: a fixed length in frames, or (min, max) for variable lengths: each item is then a
    window of random length in [min, max] (clips shorter than max give shorter windows, down to
    min). stride: frames between window starts (default: half the window). mirror_prob: chance
    of mirroring an item, swapping left and right in its text too.
    """

    def __init__(self, root: str | Path, split: str | None = "train", window: int | tuple[int, int] = 60,
                 stride: int | None = None, mirror_prob: float = 0.0, seed: int = 0,
                 skeleton: Skeleton | None = None, canonicalize: bool = True):
        self.index = DatasetIndex.load(root)
        self.skeleton = skeleton or neutral_skeleton()
        self.min_len, self.max_len = (window, window) if isinstance(window, int) else window
        if not (1 <= self.min_len <= self.max_len):
            raise DatasetError(f"window lengths must satisfy 1 <= min <= max, got {window}")
        self.stride = stride or max(1, self.max_len // 2)
        self.mirror_prob = mirror_prob
        self.canonicalize = canonicalize
        self.seed = seed
        self.epoch = 0
        self.entries = list(self.index.entries(split))
        self.motions: list[Motion] = []
        self.windows: list[_Window] = []
        for k, e in enumerate(self.entries):
            m = self.index.load_clip(e["id"])
            self.motions.append(m)
            T = m.num_frames
            if T < self.min_len:
                continue
            if T <= self.max_len:
                self.windows.append(_Window(k, 0, T))
            else:
                starts = list(range(0, T - self.max_len + 1, self.stride))
                if starts[-1] != T - self.max_len:
                    starts.append(T - self.max_len)  # cover the clip's end too
                self.windows += [_Window(k, s, self.max_len) for s in starts]
        if not self.windows:
            what = f"split {split!r}" if split else "the dataset"
            raise DatasetError(f"{root}: {what} has no clip of at least {self.min_len} frames "
                               f"({len(self.entries)} clips in that split)")

    def set_epoch(self, epoch: int) -> None:
        """Vary random window lengths, text choice and mirroring between epochs, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        w = self.windows[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        length, start = w.length, w.start
        if self.min_len < self.max_len:
            length = rng.randint(min(self.min_len, w.length), w.length)
            start = w.start + rng.randint(0, w.length - length)
        m = self.motions[w.clip].crop(start, length)
        text = rng.choice(self.entries[w.clip]["texts"])
        mirrored = rng.random() < self.mirror_prob
        if mirrored:
            m = m.mirror(self.skeleton)
            text = mirror_text(text)
        if self.canonicalize:
            m = m.canonicalize(self.skeleton, floor=False)  # the clip already stands on the floor
        return {"rot6d": m.rot6d(), "trans": m.trans, "length": length, "text": text,
                "clip_id": self.entries[w.clip]["id"], "mirrored": mirrored, "start": start}


def collate_motion(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of items to the longest and build the mask (identity rotation on padding)."""
    B = len(items)
    T = max(int(it["length"]) for it in items)
    rot6d = _IDENTITY_6D.repeat(B, T, 24, 1)
    trans = torch.zeros(B, T, 3)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, it in enumerate(items):
        n = int(it["length"])
        rot6d[b, :n] = it["rot6d"]
        trans[b, :n] = it["trans"]
        mask[b, :n] = True
    return {"rot6d": rot6d, "trans": trans, "mask": mask,
            "length": torch.tensor([int(it["length"]) for it in items]),
            "text": [it["text"] for it in items], "clip_id": [it["clip_id"] for it in items],
            "mirrored": torch.tensor([bool(it["mirrored"]) for it in items]),
            "start": torch.tensor([int(it.get("start", 0)) for it in items])}
