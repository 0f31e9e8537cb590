"""Training the text-motion evaluator (core/models/evaluator.py) that judges generated motions.

    motionclip train evaluator --data DIR --out EVAL [--epochs 40] [--resume]
    torchrun --nproc_per_node N -m motionclip.core.cli train evaluator ...   (several GPUs / nodes)

Trained on the train split only, with the trainers' shared machinery (train/runs.py: checkpoints with
optimizer state, exact resume from (seed, epoch), metrics.csv and TensorBoard logs, DDP). Under DDP each
process takes its share of every global batch of the one-process order and the embeddings of all
processes are gathered for the loss, so N processes follow the one-process curve. Validation reports
text-to-motion retrieval top-1 within groups of 32 val windows.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from motionclip.core.errors import read_json
from motionclip.core.models.evaluator import EvaluatorConfig, TextMotionEvaluator, build_vocab, matching_loss
from motionclip.core.run import CONFIG, WEIGHTS, RunError, load_state_into, load_weights, read_config, require_section
from motionclip.train.epochs import EpochBatches, LossSums, train_val_windows
from motionclip.train.runs import ConfigBase, Dist, RunDir, TrainError, barrier, gather_cat, gather_list, open_run

RUN_KIND = "evaluator"


@dataclass
class EvaluatorTrainConfig(ConfigBase):
    LABEL = "evaluator training config"

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
        self.check_ints("epochs", "batch_size", "window", "checkpoint_every")
        if not isinstance(self.model, dict):
            self._fail(f"model must be an object of EvaluatorConfig fields, got {self.model!r}")
        if "vocab" in self.model:
            self._fail("model.vocab is built from the data; leave it out")
        EvaluatorConfig.from_dict(self.model)


class GlobalBatchShares(Sampler):
    """The one-process order (a seeded permutation, cut into global batches), each process taking its
    consecutive share of every global batch: N processes see exactly the batches of one."""

    def __init__(self, n: int, batch_size: int, d: Dist, seed: int) -> None:
        self.n, self.batch, self.d, self.seed = n, batch_size, d, seed
        self.local = batch_size // d.world

    def __len__(self) -> int:
        return (self.n // self.batch) * self.local

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        r = self.d.rank * self.local
        for k in range(self.n // self.batch):
            yield from perm[k * self.batch + r:k * self.batch + r + self.local]


class _Pair(torch.nn.Module):
    """The model's two encoders as one forward (DDP synchronises gradients of what forward computes)."""

    def __init__(self, model: TextMotionEvaluator) -> None:
        super().__init__()
        self.model = model

    def forward(self, rot6d, trans, mask, texts):
        return self.model.encode_motion(rot6d, trans, mask), self.model.encode_text(texts)


def _vocab(data: Path, run: RunDir, resume: bool) -> list[str]:
    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.data.texts import mirror_text

    if resume:
        vocab = read_config(run.path)["model"].get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise TrainError(f"{run.path / CONFIG}: model.vocab must be the list of words the run was trained with; "
                             f"the file was edited or damaged - restore it from a copy")
        return vocab
    # words of the train split only (mirrored too): nothing from the test split leaks in
    texts = [t for e in DatasetIndex.load(data).entries("train") for t in e["texts"]]
    return build_vocab(texts + [mirror_text(t) for t in texts])


def train_evaluator(data: str | Path, out: str | Path, cfg: EvaluatorTrainConfig, resume: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from motionclip.core.data.windows import collate_motion

    data = Path(data)
    d, run, done = open_run(out, cfg, resume, progress)
    if done is not None:
        return done
    train_set, val_set = train_val_windows(data, cfg)
    if len(train_set) < cfg.batch_size:
        raise TrainError(f"{data}: the train split has {len(train_set)} windows, fewer than one batch of {cfg.batch_size}")
    model_cfg = EvaluatorConfig.from_dict({**cfg.model, "vocab": _vocab(data, run, resume), "fps": train_set.index.fps})
    model = TextMotionEvaluator(model_cfg).to(d.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, step = run.load_checkpoint(model, opt) if resume else (0, 0)
    ddp = torch.nn.parallel.DistributedDataParallel(_Pair(model)) if d.world > 1 else _Pair(model)
    run_config = {"kind": RUN_KIND, "model": model_cfg.to_dict(),
                  "encoder": {"name": "evaluator-words", "dim": model_cfg.dim, "note": "own word-level text encoder"},
                  "train": asdict(cfg), "data": {"path": str(data), "fps": train_set.index.fps,
                                                   "train_windows": len(train_set)},
                  "world_size": d.world, "parameters": model.num_parameters()}
    run.start(run_config)
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(cfg.seed * 1000 + epoch)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size // d.world, collate_fn=collate_motion, drop_last=True,
                            sampler=GlobalBatchShares(len(train_set), cfg.batch_size, d, cfg.seed * 1000 + epoch))
        steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
        model.train()
        t0 = time.perf_counter()
        desc = f"evaluator epoch {epoch + 1}/{cfg.epochs}" if progress and d.main else None
        step, sums = _train_epoch(ddp, model, opt, EpochBatches(loader, steps, d, desc, digits=3), cfg, d, step)
        metrics = {"epoch": epoch + 1, "step": step, **sums.means(d),
                   **(validate_evaluator(model, val_set) if val_set is not None and d.main else {}),
                   "seconds": round(time.perf_counter() - t0, 3)}
        run.log(metrics)
        if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.checkpoint_every == 0:
            run_config["metrics"] = metrics
            run.commit(model, opt, epoch + 1, step, run_config)
        barrier(d)
    run.close()
    return metrics


def _train_epoch(ddp, model, opt, batches: EpochBatches, cfg: EvaluatorTrainConfig, d: Dist,
                 step: int) -> tuple[int, LossSums]:
    """One epoch of the matching loss over the global batch; returns (step, the summed loss)."""
    sums = LossSums()
    for batch in batches:
        motion, text = ddp(batch["rot6d"], batch["trans"], batch["mask"], batch["text"])
        loss = matching_loss(gather_cat(motion, d), gather_cat(text, d), gather_list(list(batch["text"]), d),
                             gather_list(list(batch["clip_id"]), d), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        sums.add({"loss": loss})
        batches.done(loss)
    return step, sums


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
    tensors, _ = load_weights(run / WEIGHTS, config.get("sha256", {}).get(WEIGHTS))
    load_state_into(model, tensors, str(run / WEIGHTS))
    return model.to(device).eval()


def cmd_train_evaluator(args) -> int:
    if args.resume:
        saved = require_section(args.out, "train")
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
    from motionclip.train.cli import add_trainer

    q = add_trainer(
        tsub, "evaluator", help="train the text-motion evaluator used by `motionclip eval --evaluator`",
        description="Train the text-motion matching model that judges generated motions (R-precision, FID, MM-Dist, "
                    "Diversity, MultiModality), on DIR's train split only. It has its own word-level text encoder learned "
                    "from scratch and its own motion encoder, so it shares nothing with the models it judges.",
        out="EVAL")
    q.add_argument("--config", metavar="FILE.json", help="JSON of EvaluatorTrainConfig fields")
    q.add_argument("--epochs", type=int, help="epochs (default 40)")
    q.add_argument("--seed", type=int)
    q.add_argument("--resume", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_evaluator)
