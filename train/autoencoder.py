"""Training the MotionCLIP auto-encoder: one process, or many under torchrun (PyTorch DDP).

    motionclip train autoencoder --data DIR --out RUN [--config small|paper|FILE.json] [--resume]
    torchrun --nproc_per_node N -m motionclip.core.cli train autoencoder ...   (multi-GPU / multi-node)

Each epoch re-seeds every random source from (seed, epoch): the window sampler, window
lengths, text choice, mirroring and dropout. A run resumed from an epoch checkpoint therefore
continues the very same loss curve. Text embeddings are computed once per unique text and
cached (the text encoder is frozen); MotionCLIP's own code recomputed them at every step.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from motionclip.core.errors import read_json
from motionclip.core.losses import LossWeights, motionclip_loss
from motionclip.core.models.motionclip import PRESETS as MODEL_PRESETS
from motionclip.core.models.motionclip import MotionCLIP, config_from_preset
from motionclip.core.rotations import rot6d_to_matrix
from motionclip.core.run import WEIGHTS, crash_point, load_state_into, load_weights, read_config
from motionclip.core.skeleton import neutral_skeleton
from motionclip.train.epochs import EpochBatches, LossSums, train_val_windows
from motionclip.train.runs import (ConfigBase, Dist, RunDir, TrainError, all_mean, all_sum, barrier, open_run,
                                   text_lookup)


@dataclass
class TrainConfig(ConfigBase):
    """Training settings (a preset, a JSON file, or both with command-line overrides)."""

    model: str = "small"  # model preset (core/models/motionclip.py PRESETS)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"enc_layers": 2}
    encoder: str = "minilm"  # text encoder spec (motionclip.core.encoders.load_encoder)
    epochs: int = 20
    batch_size: int = 20  # global batch, split evenly over processes
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    window: int = 60  # frames per training window (the paper's 60 at 30 fps)
    min_window: int = 0  # > 0: variable-length windows in [min_window, window]
    stride: int = 0  # frames between window starts; 0 = half a window
    mirror_prob: float = 0.5  # mirroring augmentation (left/right swapped in the text too)
    loss: dict[str, float] = field(default_factory=lambda: LossWeights().to_dict())
    seed: int = 0
    checkpoint_every: int = 1  # epochs between checkpoints (one is always written at the end)
    max_steps_per_epoch: int = 0  # > 0: cut epochs short (quick runs, benchmarks)
    text_cache: bool = True  # embed each text once; False recomputes per batch (benchmark only)
    image_cache: bool = True  # image loss from DATA/cache/images-* (motionclip embed-frames) when complete for the encoder
    num_workers: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA; no effect on CPU
    init: str = ""  # a run directory whose weights start this run (fine-tuning); its model config must match
    warmup_steps: int = 0  # linear learning-rate warm-up from 0 over this many steps
    lr_schedule: str = "constant"  # after warm-up: "constant", or "cosine" decay to lr * final_lr_ratio at the last step
    final_lr_ratio: float = 0.1  # the cosine schedule's end, as a fraction of lr
    val_max_windows: int = 0  # > 0: validate on this many windows of the val split (a fixed, spread-out subset)
    stat_windows: int = 4000  # training windows sampled for the feature mean/std of models that normalise
    same_length_batches: bool = False  # with min_window: one random length per batch (no padding) instead of per window

    def __post_init__(self) -> None:
        if self.model not in MODEL_PRESETS:
            raise TrainError(f"unknown model preset {self.model!r}; presets: {', '.join(MODEL_PRESETS)}")
        self.check_ints("epochs", "batch_size", "window", "checkpoint_every", "stat_windows")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            self._fail(f"lr must be positive, got {self.lr!r}")
        self.check_fraction("mirror_prob", "final_lr_ratio")
        self.check_window()
        self.check_ints("warmup_steps", "val_max_windows", minimum=0)
        if self.lr_schedule not in ("constant", "cosine"):
            self._fail(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        LossWeights(**self.loss)  # validates the names and values


# The built-in recipe (train/builtin/, the model card): the `builtin` model (narrow pre-LN layers on z-scored
# features, no dropout on the decoder's queries) on 20 fps windows of 2-4 s, warm-up then cosine decay.
_BUILTIN: dict[str, Any] = dict(
    model="builtin", encoder="minilm", epochs=120, batch_size=32, lr=5e-4, warmup_steps=200, lr_schedule="cosine",
    window=80, min_window=40, stride=20, same_length_batches=True, mirror_prob=0.5, seed=0, val_max_windows=512,
    loss=dict(LossWeights(text=1.0).to_dict()))

# Training presets, as data. "small": trains on a 2-core CPU; "paper": MotionCLIP's settings
# (with the paper's CLIP ViT-B/32 text encoder in "paper-clip").
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(model="small", epochs=20, batch_size=20),
    "paper": dict(model="paper", epochs=100, batch_size=20),
    "paper-clip": dict(model="paper", epochs=100, batch_size=20, encoder="clip:ViT-B/32"),
    # The built-in model (core/assets/model; see its MODEL_CARD.md and train/builtin/): a small
    # model with the offline text encoder, 4 s windows of varying length, a stronger text term.
    "builtin": dict(_BUILTIN),
    # The same recipe with CLIP ViT-B/32 (512-d latent), for users who have its weights.
    "builtin-clip": dict(_BUILTIN, encoder="clip:ViT-B/32"),
}


def load_train_config(spec: str | None, overrides: dict[str, Any]) -> TrainConfig:
    base: dict[str, Any] = {}
    if spec:
        if spec in TRAIN_PRESETS:
            base = dict(TRAIN_PRESETS[spec])
        elif spec.endswith(".json") or os.path.sep in spec:
            base = read_json(spec, TrainError, "training config file")
        else:
            raise TrainError(f"unknown training preset {spec!r}; presets: {', '.join(TRAIN_PRESETS)}, or a .json file")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(base, spec or "training config")


# --- training ---------------------------------------------------------------------------------------------------

def _image_lookup(cfg: TrainConfig, encoder, data: Path) -> tuple[Any, str]:
    """Rendered-frame CLIP image embeddings for the image loss (motionclip.render.cache), or None and why not."""
    if not cfg.image_cache:
        return None, "image_cache is off in the training config"
    from motionclip.render.cache import load_for_training

    return load_for_training(data, encoder)


def _lineage_entry(run: RunDir, cfg: TrainConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """This run's line in the weights' training log: when, from what, how much (epoch time summed from metrics.csv)."""
    import datetime

    rows = run.metrics_rows()
    seconds = sum(float(r.get("seconds") or 0) for r in rows)
    samples = sum(float(r.get("samples_per_s") or 0) * float(r.get("seconds") or 0) for r in rows)
    return {"run": run.path.name, "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "init": Path(cfg.init).name if cfg.init else None, "epochs": metrics["epoch"], "steps": metrics["step"],
            "samples": int(round(samples)), "minutes": round(seconds / 60, 1),
            "val_mpjpe_mm": round(float(metrics.get("val_mpjpe_mm", float("nan"))), 1)}


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`: warm-up, then constant or cosine."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def feature_statistics(model: MotionCLIP, windows, limit: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std [F] of the model's (raw) input features over up to `limit` training windows,
    mirrored ones included as training draws them."""
    idx = list(range(len(windows)))
    if len(idx) > limit:
        idx = sorted(torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:limit].tolist())
    total = sq = None
    n = 0
    for i in idx:
        it = windows[i]
        x = model.features(it["rot6d"][None], it["trans"][None], normalized=False)[0].double()  # [L, F]
        total = x.sum(0) if total is None else total + x.sum(0)
        sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
        n += x.shape[0]
    mean = total / n
    std = (sq / n - mean * mean).clamp(min=0).sqrt()
    return mean.float(), std.float()


def _mpjpe_mm(batch: dict[str, Any], out: dict[str, torch.Tensor], skeleton) -> float:
    mask = batch["mask"]
    rest = skeleton.rest_joints.to(out["rot6d"].device)
    from motionclip.core.skeleton import forward_kinematics

    a = forward_kinematics(rot6d_to_matrix(out["rot6d"][mask].float()), rest, out["trans"][mask].float())[0]
    b = forward_kinematics(rot6d_to_matrix(batch["rot6d"][mask]), rest, batch["trans"][mask])[0]
    return float((a - b).norm(dim=-1).mean()) * 1000.0


def train_autoencoder(data: str | Path, out: str | Path, cfg: TrainConfig, resume: bool = False,
                      progress: bool = True) -> dict[str, Any]:
    """Train; returns the final metrics. Writes the run directory at `out` (see motionclip.core.run)."""
    from motionclip.core.encoders import load_encoder

    data = Path(data)
    d, run, done = open_run(out, cfg, resume, progress)
    if done is not None:
        return done

    encoder = load_encoder(cfg.encoder, device=d.device)
    texts_to_emb = text_lookup(cfg, encoder, data, d, progress and d.main)
    images, image_why = _image_lookup(cfg, encoder, data)
    if progress and d.main:
        print(f"image loss: {'on' if images is not None else 'off'} ({image_why})")
    train_set, val_set, sampler, loader = _data_loaders(data, cfg, d)
    model, model_cfg, lineage = _build_model(cfg, encoder, train_set, resume, d.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, step = run.load_checkpoint(model, opt) if resume else (0, 0)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if d.world > 1 else model
    skeleton = neutral_skeleton()
    weights = LossWeights(**cfg.loss)

    run_config = {"model": model_cfg.to_dict(), "encoder": {"spec": cfg.encoder, **encoder.identity()},
                  "train": asdict(cfg), "data": {"path": str(data), "fps": train_set.index.fps,
                                                   "train_windows": len(train_set)},
                  "world_size": d.world, "parameters": model.num_parameters(),
                  "image_loss": {"on": images is not None, "source": image_why}}
    run.start(run_config)
    metrics: dict[str, Any] = {}
    steps_per_epoch = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
    epochs = _Epochs(ddp, model, opt, cfg, d, texts_to_emb, images, skeleton, weights, steps_per_epoch * cfg.epochs)
    for epoch in range(start_epoch, cfg.epochs):
        # Everything random in this epoch follows from (seed, epoch): exact resume.
        torch.manual_seed(cfg.seed * 1000 + epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        desc = f"epoch {epoch + 1}/{cfg.epochs}" if progress and d.main else None
        step, sums, z_norm = epochs.run(EpochBatches(loader, steps_per_epoch, d, desc), step, epoch)
        seconds = time.perf_counter() - t0
        n = sums.n
        train_m = sums.means(d)
        train_m["latent_norm"] = all_mean({"z": z_norm / max(n, 1)}, d)["z"]
        val_m = _validate(model, val_set, texts_to_emb, skeleton, weights, cfg, d, images) if val_set else {}
        metrics = {"epoch": epoch + 1, "step": step, **train_m, **val_m, "lr": opt.param_groups[0]["lr"],
                   "seconds": round(seconds, 3), "samples_per_s": round(n * cfg.batch_size / seconds, 2)}
        run.log(metrics)
        if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.checkpoint_every == 0:
            if d.main:
                run_config.update(metrics=metrics, latent_norm=metrics["latent_norm"],
                                  lineage=lineage + [_lineage_entry(run, cfg, metrics)])
            run.commit(model, opt, epoch + 1, step, run_config)
        barrier(d)
    run.close()
    return metrics


def _data_loaders(data: Path, cfg: TrainConfig, d: Dist):
    """The train and val windows (val is None when no clip is long enough), the sampler and the train loader."""
    from motionclip.core.data.windows import SameLengthBatches, collate_motion

    train_set, val_set = train_val_windows(data, cfg)
    local_batch = cfg.batch_size // d.world
    if len(train_set) < cfg.batch_size:
        raise TrainError(f"{data}: the train split has {len(train_set)} windows, fewer than one batch of "
                         f"{cfg.batch_size}; lower --batch-size or add data")
    sampler = DistributedSampler(train_set, num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    if cfg.same_length_batches:
        loader = DataLoader(train_set, batch_sampler=SameLengthBatches(sampler, local_batch, train_set),
                            collate_fn=collate_motion, num_workers=cfg.num_workers)
    else:
        loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, collate_fn=collate_motion,
                            num_workers=cfg.num_workers, drop_last=True)
    return train_set, val_set, sampler, loader


def _build_model(cfg: TrainConfig, encoder, train_set, resume: bool, device) -> tuple[MotionCLIP, Any, list[dict[str, Any]]]:
    """The model (with --init's weights, or fresh normalization statistics), its config and the weights' lineage."""
    model_cfg = config_from_preset(cfg.model, **{"latent_dim": encoder.dim, **cfg.model_overrides})
    if model_cfg.latent_dim != encoder.dim:
        raise TrainError(f"latent_dim {model_cfg.latent_dim} must equal the text encoder's dimension {encoder.dim}")
    model = MotionCLIP(model_cfg).to(device)
    init_cfg = read_config(cfg.init) if cfg.init else {}
    lineage: list[dict[str, Any]] = list(init_cfg.get("lineage", []))  # trainings of these weights, oldest first
    if cfg.init and not resume:  # fine-tuning: start from another run's weights (same model config)
        if init_cfg["model"] != model_cfg.to_dict():
            raise TrainError(f"--init {cfg.init}: its model config {init_cfg['model']} differs from this run's "
                             f"{model_cfg.to_dict()}; fine-tuning keeps the architecture")
        load_state_into(model, load_weights(Path(cfg.init) / WEIGHTS)[0], str(Path(cfg.init) / WEIGHTS))
    if model_cfg.normalize and not cfg.init and not resume:  # init / resume bring their statistics with the weights
        model.set_normalization(*feature_statistics(model, train_set, cfg.stat_windows, cfg.seed))
    return model, model_cfg, lineage


@dataclass
class _Epochs:
    """What every optimizer step of a run uses."""
    ddp: Any
    model: MotionCLIP
    opt: torch.optim.Optimizer
    cfg: TrainConfig
    d: Dist
    texts_to_emb: Any
    images: Any
    skeleton: Any
    weights: LossWeights
    total_steps: int

    def run(self, batches: EpochBatches, step: int, epoch: int) -> tuple[int, LossSums, float]:
        """One epoch of optimizer steps; returns (step, the summed losses, the summed latent norm)."""
        cfg, d, opt = self.cfg, self.d, self.opt
        amp = cfg.amp and d.device.type == "cuda"
        sums = LossSums()
        z_norm = 0.0
        for batch in batches:
            text_emb = self.texts_to_emb(batch["text"]).to(d.device)
            image_emb = self.images.batch(batch, epoch).to(d.device) if self.images is not None else None
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                out = self.ddp(batch)
            losses = motionclip_loss(batch, {k: v.float() for k, v in out.items()}, self.skeleton.to(d.device),
                                     text_emb=text_emb, image_emb=image_emb, weights=self.weights)
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step, self.total_steps)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            opt.step()
            crash_point("step")
            step += 1
            z_norm += float(out["z"].detach().float().norm(dim=-1).mean())
            sums.add(losses)
            batches.done(losses["total"])
        return step, sums, z_norm


@torch.no_grad()
def _validate(model, val_set, texts_to_emb, skeleton, weights, cfg: TrainConfig, d: Dist,
              images=None) -> dict[str, float]:
    """Validation losses and reconstruction MPJPE (mm) over the whole val split, on every rank's share."""
    from motionclip.core.data.windows import collate_motion

    model.eval()
    chosen = list(range(len(val_set)))
    if cfg.val_max_windows and len(chosen) > cfg.val_max_windows:  # evenly spread: every clip's neighbourhood
        chosen = [len(chosen) * k // cfg.val_max_windows for k in range(cfg.val_max_windows)]
    idx = chosen[d.rank::d.world]
    # Means over items, summed over all processes (a process may have fewer items, or none): the same
    # numbers whatever the number of processes. Every process reduces the same keys.
    sums: dict[str, float] = {f"val_{k}": 0.0 for k in ("rc", "rcxyz", "vel", "text", "total", "mpjpe_mm")}
    if images is not None:
        sums["val_image"] = 0.0
    n = 0
    for s in range(0, len(idx), cfg.batch_size):
        batch = collate_motion([val_set[i] for i in idx[s:s + cfg.batch_size]])
        batch = {k: (v.to(d.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        out = model(batch)
        losses = motionclip_loss(batch, out, skeleton.to(d.device), text_emb=texts_to_emb(batch["text"]).to(d.device),
                                 image_emb=images.batch(batch).to(d.device) if images is not None else None,
                                 weights=weights)
        b = len(batch["text"])
        for k, v in losses.items():
            sums[f"val_{k}"] = sums.get(f"val_{k}", 0.0) + float(v) * b
        sums["val_mpjpe_mm"] += _mpjpe_mm(batch, out, skeleton) * b
        n += b
    totals = all_sum({**sums, "_items": float(n)}, d)
    n = totals.pop("_items")
    return {k: v / max(n, 1) for k, v in totals.items()}
