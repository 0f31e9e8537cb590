"""What every trainer shares: run directories, checkpoints and exact resume, CSV + TensorBoard logs,
DDP helpers, and the base of the training configs.

A trainer's life with a run directory (core/run.py describes its files):

    d, run, done = open_run(out, cfg, resume, progress)
                                          # the processes; RunDir refuses a used --out, an empty --resume and
                                          # repairs an interrupted checkpoint; done: --resume of a finished
                                          # run, its metrics (nothing rewritten)
    start_epoch, step = run.load_checkpoint(model, opt) if resume else (0, 0)
    run.start(run_config)                 # config.json of a new run; metrics.csv / TensorBoard logs
    ... run.log(metrics); run.commit(model, opt, epoch, step, run_config) ...
    run.close()

Each commit writes the resume checkpoint, model.safetensors and config.json (with the SHA-256 of both
weights files) as one unit, so a kill at any moment leaves the previous checkpoint or the new one.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from motionclip.core.errors import MotionClipError, check_fields
from motionclip.core.run import (CONFIG, SHA256, WEIGHTS, commit_run, crash_point, load_state_into, load_weights,
                                 read_config, recover_run, weights_bytes, write_config)

CKPT_DIR = "checkpoints"
CHECKPOINT = f"{CKPT_DIR}/last.safetensors"
METRICS = "metrics.csv"


class TrainError(MotionClipError):
    pass


# --- training configs ----------------------------------------------------------------------------------------

class ConfigBase:
    """Base of the trainers' dataclass configs: from_dict with clear errors, and the common field checks."""

    LABEL = "training config"  # how error messages name the config

    @classmethod
    def from_dict(cls, d: Any, origin: str | None = None):
        origin = origin or cls.LABEL
        if not isinstance(d, dict):
            raise TrainError(f"{origin}: expected a JSON object of fields, got {type(d).__name__}")
        check_fields(cls, d, origin, TrainError)
        try:
            return cls(**d)
        except TypeError as exc:
            raise TrainError(f"{origin}: {exc}") from None

    def _fail(self, message: str) -> None:
        raise TrainError(f"{self.LABEL}: {message}")

    def check_ints(self, *names: str, minimum: int = 1) -> None:
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
                self._fail(f"{name} must be {what}, got {v!r}")

    def check_fraction(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                self._fail(f"{name} must be a number in [0, 1], got {v!r}")

    def check_window(self) -> None:
        if self.min_window > self.window:
            self._fail(f"min_window {self.min_window} exceeds window {self.window}")


# --- distributed -------------------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """torchrun sets WORLD_SIZE / RANK / LOCAL_RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return Dist(rank, world, local, device)


def teardown_distributed(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def all_sum(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Sum over processes; every process must pass the same keys."""
    if d.world == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    summed = {k: float(v) for k, v in zip(keys, t)}
    return {k: summed[k] for k in values}  # the caller's order (metrics.csv columns as with one process)


def all_mean(values: dict[str, float], d: Dist) -> dict[str, float]:
    return {k: v / d.world for k, v in all_sum(values, d).items()}


def gather_cat(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """[b, D] on each of the processes -> [world * b, D] on every process, with gradients to each part."""
    if d.world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def gather_list(items: list, d: Dist) -> list:
    """Python lists (texts, ids) of every process, concatenated in rank order."""
    if d.world == 1:
        return items
    out: list = [None] * d.world
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


# --- frozen text embeddings --------------------------------------------------------------------------------

def text_lookup(cfg, encoder, data: Path, d: Dist, progress: bool):
    """texts -> [B, D] embeddings: from the cache (computed once, by rank 0) or the encoder each time
    (cfg.text_cache); cfg.mirror_prob > 0 embeds the mirrored texts too."""
    if not cfg.text_cache:
        return lambda texts: encoder.encode_text(texts)
    from motionclip.core.encoders.cache import TextEmbeddingCache, cache_dataset_texts

    if d.main:
        cache = cache_dataset_texts(data, encoder, progress=progress)
        if cfg.mirror_prob > 0:
            # Mirrored items carry left/right-swapped texts that the dataset's own texts may not include. Embed
            # them now, in a fixed order: embedded lazily, a text's numbers would depend on which texts shared its
            # batch (padding, batch size) - that is, on the run's history - breaking exact resume and DDP parity.
            from motionclip.core.data.dataset_dir import DatasetIndex
            from motionclip.core.data.texts import mirror_text

            mirrored = [mirror_text(t) for e in DatasetIndex.load(data).entries() for t in e["texts"]]
            missing = [t for t in dict.fromkeys(mirrored) if t not in cache]
            if missing:
                cache.get(missing)
                cache.save()
    barrier(d)
    cache = TextEmbeddingCache(data / "cache", encoder)
    return lambda texts: cache.get(texts)


# --- metrics log ---------------------------------------------------------------------------------------------

def read_metrics(path: Path) -> list[dict[str, str]]:
    """metrics.csv's rows, checked: an edited or damaged log gets an error naming the line, not a traceback."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TrainError(f"{path}: not a readable CSV log ({exc}); fix or delete the file (the weights are "
                         f"not affected)") from None
    for n, row in enumerate(rows, start=2):
        for key in ("epoch", "step", "seconds", "samples_per_s"):
            v = row.get(key)
            try:
                if key in ("epoch", "step") or v:
                    float(v) if key in ("seconds", "samples_per_s") else int(v)
            except (TypeError, ValueError):
                raise TrainError(f"{path}: line {n}: {key} {v!r} is not a number; the log was edited or damaged - "
                                 f"fix or delete that line (the weights are not affected)") from None
    return rows


class MetricsLog:
    """metrics.csv (one row per epoch, rewritten atomically; a resumed run replaces the rows it redoes)
    and TensorBoard scalars under tb/ when tensorboard is installed."""

    def __init__(self, run: Path, tensorboard: bool = True, quiet: bool = False) -> None:
        self.path = run / METRICS
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(run / "tb"))
            except ImportError:
                if not quiet:
                    print("tensorboard is not installed: logging to metrics.csv only (pip install tensorboard)")

    def log(self, metrics: dict[str, Any]) -> None:
        rows = [r for r in read_metrics(self.path) if int(r["epoch"]) < metrics["epoch"]]
        rows.append(dict(metrics))
        keys = list(dict.fromkeys(k for r in rows for k in r))
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step") and math.isfinite(v):
                    self.writer.add_scalar(k, v, metrics["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- checkpoints -----------------------------------------------------------------------------------------------

def checkpoint_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int, step: int) -> bytes:
    """Weights + optimizer tensors in safetensors, counters and param groups in the metadata (no pickle)."""
    state = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for pid, s in state["state"].items():
        for k, v in s.items():
            tensors[f"opt.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    meta = {"epoch": str(epoch), "step": str(step), "param_groups": json.dumps(state["param_groups"])}
    return weights_bytes(tensors, metadata=meta)


class RunDir:
    """A trainer's run directory (see the module's docstring). File writes happen on the main process only."""

    def __init__(self, path: str | Path, d: Dist, resume: bool, quiet: bool = False) -> None:
        self.path, self.d, self.resume, self.quiet = Path(path), d, resume, quiet
        self.log_: MetricsLog | None = None
        if self.path.exists() and (self.path / CONFIG).exists() and not resume:
            raise TrainError(f"{self.path} already holds a run; pass --resume to continue it, or choose another --out")
        if resume and d.main:
            for line in recover_run(self.path):  # a kill during a checkpoint, stray temporary files
                if not quiet:
                    print(f"{self.path}: {line}")
        barrier(d)
        if resume and not (self.path / CHECKPOINT).is_file():
            raise TrainError(f"{self.path}: nothing to resume (no {CHECKPOINT})")

    def _checkpoint_sha256(self) -> str | None:
        return read_config(self.path).get(SHA256, {}).get(CHECKPOINT)

    def checkpoint_epoch(self) -> int:
        from safetensors import safe_open

        try:
            with safe_open(str(self.path / CHECKPOINT), framework="pt") as f:
                return int((f.metadata() or {})["epoch"])
        except Exception as exc:
            raise TrainError(f"{self.path / CHECKPOINT}: not a readable checkpoint ({exc}); the file is corrupt or "
                             f"truncated - restore it from a copy, or start the run again") from None

    def finished(self, epochs: int) -> dict[str, Any] | None:
        """With --resume: the saved metrics when the checkpoint already reached `epochs` (nothing to do)."""
        if not self.resume:
            return None
        done = self.checkpoint_epoch()
        if done < epochs:
            return None
        config = read_config(self.path)
        if self.d.main:
            print(f"{self.path}: already trained to epoch {done} (of {epochs}); nothing to do, the run is left as "
                  f"it is (ask for more epochs to train further)")
            saved = (config.get("metrics") or {}).get("epoch")
            if SHA256 not in config and saved != done:
                print(f"warning: {self.path / WEIGHTS} and {CONFIG} hold epoch {saved}, the checkpoint epoch {done}: "
                      f"this run, written before checkpoints were saved as one unit, was interrupted between them; "
                      f"resume it with more epochs to write them all again")
        return dict(config.get("metrics") or {"epoch": done})

    def load_checkpoint(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, int]:
        """(epoch, step) of the resume checkpoint, loaded into `model` and `opt`; its SHA-256 checked."""
        tensors, meta = load_weights(self.path / CHECKPOINT, self._checkpoint_sha256())
        load_state_into(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                        str(self.path / CKPT_DIR))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
        return int(meta["epoch"]), int(meta["step"])

    def start(self, config: dict[str, Any], tensorboard: bool = True) -> None:
        """A new run's config.json (a resumed run keeps its own until the next commit) and the logs."""
        if self.d.main:
            self.path.mkdir(parents=True, exist_ok=True)
            read_metrics(self.path / METRICS)  # a damaged log stops the run now, not after an epoch
            if not self.resume:
                write_config(self.path, config)
            self.log_ = MetricsLog(self.path, tensorboard, self.quiet)

    def log(self, metrics: dict[str, Any]) -> None:
        if self.log_ is not None:
            self.log_.log(metrics)

    def commit(self, model: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int, step: int,
               config: dict[str, Any]) -> None:
        """Checkpoint, model.safetensors and config.json together (main process)."""
        if not self.d.main:
            return
        crash_point("epoch-end")
        files = {CHECKPOINT: checkpoint_bytes(model, opt, epoch, step), WEIGHTS: weights_bytes(model.state_dict())}
        commit_run(self.path, files, config)
        crash_point("committed")

    def metrics_rows(self) -> list[dict[str, str]]:
        return read_metrics(self.path / METRICS)

    def close(self) -> None:
        if self.log_ is not None:
            self.log_.close()
        teardown_distributed(self.d)


def open_run(out: str | Path, cfg, resume: bool, progress: bool,
             epochs: int | None = None) -> tuple[Dist, RunDir, dict[str, Any] | None]:
    """A trainer's start: the processes, the run directory, and with --resume the saved metrics when the run
    already reached `epochs` (default cfg.epochs; then the run is closed and there is nothing to do)."""
    d = setup_distributed()
    if cfg.batch_size % d.world:
        teardown_distributed(d)
        raise TrainError(f"batch_size {cfg.batch_size} must be divisible by the {d.world} processes")
    run = RunDir(out, d, resume, quiet=not progress)
    done = run.finished(cfg.epochs if epochs is None else epochs)
    if done is not None:
        run.close()
        return d, run, done
    torch.manual_seed(cfg.seed)
    return d, run, None
