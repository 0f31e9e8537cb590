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
from typing import Any, Iterator

import torch
from torch.utils.data import Dataset, Sampler

from ..motion import Motion, facing_from_joints
from ..rotations import axis_angle_to_matrix
from ..skeleton import Skeleton, neutral_skeleton
from .dataset_dir import DatasetError, DatasetIndex
from .texts import mirror_text

_IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass
class _Window:
    clip: int
    start: int
    length: int


class _ClipFeatures:
    """One clip's training features, computed once: rot6d [T, J, 6], root translation [T, 3] and the
    facing yaw of every frame, for the clip and (when mirroring is used) its mirror image. A window
    is then a slice and one yaw turn of the root - the same numbers as Motion.crop(...).canonicalize(
    floor=False) without forward kinematics per item."""

    def __init__(self, motion: Motion, skeleton: Skeleton, mirror: bool):
        self.rest_root = skeleton.rest_joints[0]
        self.sides = [self._side(motion, skeleton)]
        if mirror:
            self.sides.append(self._side(motion.mirror(skeleton), skeleton))

    @staticmethod
    def _side(m: Motion, skeleton: Skeleton) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = facing_from_joints(m.joints(skeleton))  # [T, 3]
        return m.rot6d().contiguous(), m.trans.contiguous(), torch.atan2(f[:, 0], f[:, 2])

    def window(self, start: int, length: int, mirrored: bool, canonicalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
        rot6d, trans, yaw = self.sides[int(mirrored)]
        r = rot6d[start:start + length].clone()  # [L, J, 6]
        t = trans[start:start + length]  # [L, 3]
        if not canonicalize:
            return r, t.clone()
        turn = axis_angle_to_matrix(torch.stack([yaw.new_zeros(()), -yaw[start], yaw.new_zeros(())]))  # [3, 3]
        root_world = (self.rest_root + t) @ turn.T  # [L, 3]
        root_world = root_world - torch.stack([root_world[0, 0], root_world.new_zeros(()), root_world[0, 2]])
        r[:, 0] = torch.cat([r[:, 0, :3] @ turn.T, r[:, 0, 3:] @ turn.T], dim=-1)  # turn @ both columns
        return r, root_world - self.rest_root


class MotionWindows(Dataset):
    """Windows of the clips of one split.

    window: a fixed length in frames, or (min, max) for variable lengths: each item is then a
    window of random length in [min, max] (clips shorter than max give shorter windows, down to
    min). stride: frames between window starts (default: half the window). mirror_prob: chance
    of mirroring an item, swapping left and right in its text too. Each clip's features are
    computed once, when the dataset is built.
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
        self.clips: list[_ClipFeatures] = []
        self.windows: list[_Window] = []
        for k, e in enumerate(self.entries):
            m = self.index.load_clip(e["id"])
            self.clips.append(_ClipFeatures(m, self.skeleton, mirror=mirror_prob > 0))
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

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """An item by window index, or by (window index, length) as SameLengthBatches asks for them."""
        i, want = key if isinstance(key, tuple) else (key, None)
        w = self.windows[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        length, start = w.length, w.start
        if want is not None or self.min_len < self.max_len:
            length = min(want, w.length) if want is not None else rng.randint(min(self.min_len, w.length), w.length)
            start = w.start + rng.randint(0, w.length - length)
        text = rng.choice(self.entries[w.clip]["texts"])
        mirrored = rng.random() < self.mirror_prob
        if mirrored:
            text = mirror_text(text)
        # the clips already stand on the floor: a window keeps its heights
        rot6d, trans = self.clips[w.clip].window(start, length, mirrored, self.canonicalize)
        return {"rot6d": rot6d, "trans": trans, "length": length, "text": text,
                "clip_id": self.entries[w.clip]["id"], "mirrored": mirrored, "start": start}


class SameLengthBatches(Sampler[list[tuple[int, int]]]):
    """Batches of a window sampler in which every window has one length, drawn per batch in the
    dataset's [min, max] from (seed, epoch, batch number): variable lengths without padding (a clip
    shorter than the batch's length still gives a shorter, padded item). Use as a DataLoader's
    batch_sampler over a MotionWindows."""

    def __init__(self, sampler: Sampler[int], batch_size: int, windows: MotionWindows):
        self.sampler, self.batch_size, self.windows = sampler, batch_size, windows

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        ds, batch, b = self.windows, [], 0
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                length = random.Random(f"{ds.seed}:{ds.epoch}:batch{b}").randint(ds.min_len, ds.max_len)
                yield [(j, length) for j in batch]
                batch, b = [], b + 1

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size  # the last, incomplete batch is dropped


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
