"""Training the text-motion evaluator (core/models/evaluator.py) that judges generated motions.

    motionclip train evaluator --data DIR --out EVAL [--epochs 40] [--resume]

Trained on the train split only, with the auto-encoder trainer's machinery (checkpoints with
optimizer state, exact resume from (seed, epoch), metrics.csv and TensorBoard logs). Validation
reports text-to-motion retrieval top-1 within groups of 32 val windows.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from motionclip.core.errors import MotionClipError, read_json
from motionclip.core.models.evaluator import EvaluatorConfig, TextMotionEvaluator, build_vocab, matching_loss
from motionclip.core.run import CONFIG, WEIGHTS, RunError, load_state_into, load_weights, read_config, save_weights, write_config
from motionclip.train.autoencoder import CKPT_DIR, TrainError, _load_checkpoint, _log, _save_checkpoint

RUN_KIND = "evaluator"


@dataclass
class EvaluatorTrainConfig:
    model: dict[str, Any] = field(default_factory=dict)  # EvaluatorConfig fields (vocab comes from the data)
    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    temperature: float = 0.1
    window: int = 90
    min_window: int = 30
    stride: int = 0
    mirror_prob: float = 0.5
    seed: int = 0
    checkpoint_every: int = 5
    max_steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "window", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TrainError(f"evaluator training config: {name} must be a positive integer, got {v!r}")
        if "vocab" in self.model:
            raise TrainError("evaluator training config: model.vocab is built from the data; leave it out")
        EvaluatorConfig.from_dict(self.model)

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "evaluator training config") -> "EvaluatorTrainConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise TrainError(f"{origin}: unknown field(s) {unknown}")
        return cls(**d)


def train_evaluator(data: str | Path, out: str | Path, cfg: EvaluatorTrainConfig, resume: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    from torch.utils.data import DataLoader, RandomSampler

    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.data.texts import mirror_text
    from motionclip.core.data.windows import MotionWindows, collate_motion

    data, run = Path(data), Path(out)
    if run.exists() and (run / CONFIG).exists() and not resume:
        raise TrainError(f"{run} already holds a run; pass --resume to continue it, or choose another --out")
    if resume and not (run / CKPT_DIR / "last.safetensors").is_file():
        raise TrainError(f"{run}: nothing to resume (no {CKPT_DIR}/last.safetensors)")
    torch.manual_seed(cfg.seed)
    window = (cfg.min_window, cfg.window) if cfg.min_window else cfg.window
    train_set = MotionWindows(data, "train", window=window, stride=cfg.stride or None, mirror_prob=cfg.mirror_prob,
                              seed=cfg.seed)
    try:
        val_set = MotionWindows(data, "val", window=window, stride=cfg.stride or None, seed=cfg.seed)
    except MotionClipError:
        val_set = None
    if len(train_set) < cfg.batch_size:
        raise TrainError(f"{data}: the train split has {len(train_set)} windows, fewer than one batch of {cfg.batch_size}")
    if resume:
        vocab = read_config(run)["model"]["vocab"]
    else:  # words of the train split only (mirrored too): nothing from the test split leaks in
        texts = [t for e in DatasetIndex.load(data).entries("train") for t in e["texts"]]
        vocab = build_vocab(texts + [mirror_text(t) for t in texts])
    model_cfg = EvaluatorConfig.from_dict({**cfg.model, "vocab": vocab, "fps": train_set.index.fps})
    model = TextMotionEvaluator(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, step = 0, 0
    if resume:
        start_epoch, step = _load_checkpoint(run, model, opt)
    run_config = {"kind": RUN_KIND, "model": model_cfg.to_dict(),
                  "encoder": {"name": "evaluator-words", "dim": model_cfg.dim, "note": "own word-level text encoder"},
                  "train": asdict(cfg), "data": {"path": str(data), "fps": train_set.index.fps,
                                                   "train_windows": len(train_set)},
                  "parameters": model.num_parameters()}
    run.mkdir(parents=True, exist_ok=True)
    write_config(run, run_config)
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run / "tb"))
    except ImportError:
        pass
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 1000 + epoch)
        train_set.set_epoch(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=RandomSampler(train_set, generator=g),
                            collate_fn=collate_motion, drop_last=True)
        steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
        model.train()
        total, n, t0 = 0.0, 0, time.perf_counter()
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=steps, desc=f"evaluator epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for i, batch in enumerate(loader):
            if i >= steps:
                break
            loss = matching_loss(model.encode_motion(batch["rot6d"], batch["trans"], batch["mask"]),
                                 model.encode_text(batch["text"]), batch["text"], batch["clip_id"], cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            n += 1
            total += float(loss.detach())
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss):.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        metrics = {"epoch": epoch + 1, "step": step, "train_loss": total / max(n, 1),
                   **(validate_evaluator(model, val_set) if val_set is not None else {}),
                   "seconds": round(time.perf_counter() - t0, 3)}
        _log(run, metrics, writer)
        if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.checkpoint_every == 0:
            _save_checkpoint(run, model, opt, epoch + 1, step)
            save_weights(model.state_dict(), run / WEIGHTS)
            run_config["metrics"] = metrics
            write_config(run, run_config)
    if writer is not None:
        writer.close()
    return metrics


@torch.no_grad()
def validate_evaluator(model: TextMotionEvaluator, val_set, chunk: int = 32) -> dict[str, float]:
    from motionclip.core.data.windows import collate_motion

    model.eval()
    batch = collate_motion([val_set[i] for i in range(len(val_set))])
    m = model.encode_motion(batch["rot6d"], batch["trans"], batch["mask"])
    t = model.encode_text(batch["text"])
    hits, count = 0.0, 0
    for a in range(0, len(batch["text"]) - 1, chunk):
        b = min(a + chunk, len(batch["text"]))
        best = (t[a:b] @ m[a:b].T).argmax(1)  # each text's nearest motion
        texts = batch["text"][a:b]
        hits += sum(texts[int(j)] == texts[i] for i, j in enumerate(best))
        count += b - a
    return {"val_r1_text_to_motion": hits / max(count, 1)}


def load_evaluator(run: str | Path, device: str | torch.device = "cpu") -> TextMotionEvaluator:
    run = Path(run)
    config = read_config(run)
    if config.get("kind") != RUN_KIND:
        raise RunError(f"{run}: not an evaluator run; train one with `motionclip train evaluator --data DIR --out EVAL`")
    model = TextMotionEvaluator(EvaluatorConfig.from_dict(config["model"]))
    tensors, _ = load_weights(run / WEIGHTS)
    load_state_into(model, tensors, str(run / WEIGHTS))
    return model.to(device).eval()


def cmd_train_evaluator(args) -> int:
    if args.resume:
        saved = read_config(args.out)["train"]
        cfg = EvaluatorTrainConfig.from_dict({**saved, **({"epochs": args.epochs} if args.epochs else {})})
    else:
        base = read_json(args.config, TrainError, "evaluator config file") if args.config else {}
        base.update({k: v for k, v in {"epochs": args.epochs, "seed": args.seed}.items() if v is not None})
        cfg = EvaluatorTrainConfig.from_dict(base)
    metrics = train_evaluator(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet)
    print(f"trained {args.out}: {json.dumps(metrics)}")
    return 0


def add_parser(tsub) -> None:
    """`motionclip train evaluator`, added to `train`'s subcommands (train/cli.py)."""
    q = tsub.add_parser(
        "evaluator", help="train the text-motion evaluator used by `motionclip eval --evaluator`",
        description="Train the text-motion matching model that judges generated motions (R-precision, FID, MM-Dist, "
                    "Diversity, MultiModality), on DIR's train split only. It has its own word-level text encoder learned "
                    "from scratch and its own motion encoder, so it shares nothing with the models it judges.")
    q.add_argument("--data", type=Path, required=True, metavar="DIR")
    q.add_argument("--out", type=Path, required=True, metavar="EVAL")
    q.add_argument("--config", metavar="FILE.json", help="JSON of EvaluatorTrainConfig fields")
    q.add_argument("--epochs", type=int, help="epochs (default 40)")
    q.add_argument("--seed", type=int)
    q.add_argument("--resume", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_evaluator)
