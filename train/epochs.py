"""What the trainers' epochs share: the train / val windows of a dataset, the first `steps` batches of
an epoch on the process's device with a progress bar, and the step losses summed over an epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from motionclip.core.errors import MotionClipError
from motionclip.train.runs import Dist, all_mean


def train_val_windows(data: Path, cfg) -> tuple[Any, Any]:
    """The train split's windows (mirrored with cfg.mirror_prob) and the val split's, None when the
    dataset has no validation clip long enough (a small dataset may not)."""
    from motionclip.core.data.windows import MotionWindows

    window = (cfg.min_window, cfg.window) if cfg.min_window else cfg.window
    train_set = MotionWindows(data, "train", window=window, stride=cfg.stride or None, mirror_prob=cfg.mirror_prob,
                              seed=cfg.seed)
    try:
        val_set = MotionWindows(data, "val", window=window, stride=cfg.stride or None, seed=cfg.seed)
    except MotionClipError:
        val_set = None
    return train_set, val_set


class EpochBatches:
    """The first `steps` batches of an epoch's loader, moved to the process's device. With `desc`, a
    progress bar that `done(loss)` advances after each step, showing the loss with `digits` decimals."""

    def __init__(self, loader, steps: int, d: Dist, desc: str | None = None, digits: int = 4):
        self.loader, self.steps, self.d, self.desc, self.digits = loader, steps, d, desc, digits
        self.bar = None

    def __iter__(self):
        if self.desc:
            from tqdm import tqdm
            self.bar = tqdm(total=self.steps, desc=self.desc, unit="batch")
        try:
            for i, batch in enumerate(self.loader):
                if i >= self.steps:
                    break
                yield {k: (v.to(self.d.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        finally:
            if self.bar is not None:
                self.bar.close()

    def done(self, loss: torch.Tensor) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{float(loss):.{self.digits}f}")
            self.bar.update(1)


class LossSums:
    """An epoch's step losses summed; `means` averages them over the steps, then over the processes."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        self.n += 1
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach())

    def means(self, d: Dist, prefix: str = "train_") -> dict[str, float]:
        return all_mean({f"{prefix}{k}": v / max(self.n, 1) for k, v in self.sums.items()}, d)
