"""MoCLIP at a length where its terms act, its lambda_distill ablation over seeds, and MotionCLIP downstream with
the plain encoder against the MoCLIP student; training-style texts against the paraphrase test set. Sized for a
2-core CPU; every step is skipped when its output exists, so a re-run continues.

    .venv/bin/python benchmarks/moclip_study.py moclip --data DATA --work WORK [--seeds 0,1,2] [--lambdas 0,0.4,1]
    .venv/bin/python benchmarks/moclip_study.py downstream --data DATA --work WORK --init core/assets/model [--seeds 0,1]
    .venv/bin/python benchmarks/moclip_study.py scratch --data DATA --work WORK --encoders plain --epochs 24
    .venv/bin/python benchmarks/moclip_study.py report --data DATA --work WORK --evaluator EVAL [--out docs]

moclip: for each seed, the head-only phase once (the student is frozen and equals the teacher there, so the
distillation term is exactly zero and the phase does not depend on lambda), then for each lambda_distill the
progressive-unfreezing phases from that checkpoint: the student's top 2 layers, then its top 4 (the embeddings
and lower layers stay the teacher's). WORK/moclip/s{seed}/l{lambda}/metrics.csv hold the curves.
downstream: `train finetune` of the --init MotionCLIP at lr 1e-6 (MoCLIP's downstream rate), the same steps, with
the plain encoder (the control) and with each seed's student at --main-lambda.
scratch: the built-in recipe (`train autoencoder --config builtin`) from scratch for --epochs, seed k, with the plain
encoder and with student s{k} at --main-lambda (frozen, as MotionCLIP keeps its text encoder): the same data and
the same steps; WORK/scratch/NAME/study_time.json records the minutes. Run the two encoders as two processes side
by side (`--encoders plain` and `--encoders moclip`) so that both share the machine alike.
report: retrieval (each model's own space) and generation (the independent evaluator; liveliness) on the
test split's Bandai-Namco windows, training-style texts and paraphrases; Markdown, JSON and plots.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HEAD = dict(part_dim=32, width=96, heads=4, limb_layers=1, time_layers=1, ff_dim=192)


def moclip_config(args, seed: int) -> dict:
    s = args.epoch_steps
    return {"teacher": "minilm", "head": HEAD, "batch_size": 32, "window": 90, "min_window": 30, "seed": seed,
            "max_steps_per_epoch": s, "val_max_windows": 256, "lambda_distill": 0.0,
            "phases": [{"name": "head", "epochs": args.head_epochs, "train": ["head"], "lr": 3e-4},
                       {"name": "top2", "epochs": args.unfreeze_epochs, "train": ["head", "student"],
                        "student_layers": 2, "lr": {"head": 1e-4, "student": args.student_lr}},
                       {"name": "top4", "epochs": args.unfreeze_epochs, "train": ["head", "student"],
                        "student_layers": 4, "lr": {"head": 1e-4, "student": args.student_lr}}]}


def cache_windows() -> None:
    """Within this process, build each (data, split, windows) dataset once: every run below reads the same data."""
    import motionclip.core.data.windows as w

    base, memo = w.MotionWindows, {}

    class Cached(base):
        def __init__(self, root, split="train", window=60, stride=None, mirror_prob=0.0, seed=0, **kw):
            key = (str(root), split, window, stride, mirror_prob > 0)
            if key not in memo:
                memo[key] = base(root, split, window, stride, mirror_prob, seed, **kw)
            self.__dict__.update(memo[key].__dict__)
            self.windows = list(memo[key].windows)
            self.mirror_prob, self.seed, self.epoch = mirror_prob, seed, 0

    w.MotionWindows = Cached


def cmd_moclip(args) -> None:
    from motionclip.train.moclip import load_moclip_config, train_moclip

    cache_windows()
    for seed in args.seeds:
        cfg = moclip_config(args, seed)
        head = args.work / "moclip" / f"s{seed}" / "head"
        if not (head / "checkpoints" / "last.safetensors").is_file():
            t0 = time.process_time()
            train_moclip(args.data, head, load_moclip_config(None, json.loads(json.dumps(cfg))), progress=False,
                         until_epoch=args.head_epochs)
            print(f"seed {seed} head phase: {time.process_time() - t0:.0f} CPU-s", flush=True)
        for lam in args.lambdas:
            run = args.work / "moclip" / f"s{seed}" / f"l{lam:g}"
            if (run / "done").is_file():
                continue
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(head, run, ignore=shutil.ignore_patterns("tb"))
            t0 = time.process_time()
            train_moclip(args.data, run, load_moclip_config(None, {**cfg, "lambda_distill": lam}), resume=True,
                         progress=False)
            (run / "done").write_text("")
            print(f"seed {seed} lambda {lam:g}: {time.process_time() - t0:.0f} CPU-s", flush=True)


def cmd_downstream(args) -> None:
    """For each seed k: the --init model fine-tuned with the plain encoder (seed k) and with student s{k}."""
    from motionclip.core.cli import main

    for seed in args.seeds:
        for name in args.encoders:
            enc = student_spec(args, name, seed)
            out = args.work / "downstream" / f"{name}-s{seed}{args.tag}"
            if (out / "model.safetensors").is_file():
                continue
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.process_time()
            code = main(["train", "finetune", "--init", str(args.init), "--encoder", enc, "--data", str(args.data),
                         "--out", str(out), "--epochs", "1", "--max-steps-per-epoch", str(args.steps),
                         "--seed", str(seed), "--quiet", *(["--lr", str(args.lr)] if args.lr else [])])
            if code:
                raise SystemExit(f"finetune {name} seed {seed} failed")
            print(f"downstream {name} seed {seed}: {time.process_time() - t0:.0f} CPU-s", flush=True)


def cmd_scratch(args) -> None:
    """For each seed k: the built-in recipe from scratch with the plain encoder or student s{k}; resumable."""
    import os

    from motionclip.core.cli import main

    for seed in args.seeds:
        for name in args.encoders:
            out = args.work / "scratch" / f"{name}-s{seed}-e{args.epochs}"
            if (out / "study_time.json").is_file():
                continue
            t0, c0 = time.time(), time.process_time()
            code = main(["train", "autoencoder", "--data", str(args.data), "--out", str(out), "--config", "builtin",
                         "--epochs", str(args.epochs), "--seed", str(seed), "--encoder", student_spec(args, name, seed),
                         "--quiet", *(["--resume"] if (out / "config.json").is_file() else [])])
            if code:
                raise SystemExit(f"scratch {name} seed {seed} failed")
            took = {"wall_minutes": round((time.time() - t0) / 60, 1), "cpu_seconds": round(time.process_time() - c0),
                    "threads": args.threads, "cpus": os.cpu_count(), "epochs": args.epochs}
            (out / "study_time.json").write_text(json.dumps(took))
            print(f"scratch {name} seed {seed}: {took}", flush=True)


def student_spec(args, name: str, seed: int) -> str:
    return "minilm" if name == "plain" else f"moclip:{args.work / 'moclip' / f's{seed}' / f'l{args.main_lambda:g}'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["moclip", "downstream", "scratch", "report"])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1, 2])
    ap.add_argument("--encoders", type=lambda t: t.split(","), default=["plain", "moclip"])
    ap.add_argument("--lambdas", type=lambda t: [float(x) for x in t.split(",")], default=[0.0, 0.4, 1.0])
    ap.add_argument("--main-lambda", type=float, default=0.4)
    ap.add_argument("--epoch-steps", type=int, default=15, help="steps per epoch (one validation point each)")
    ap.add_argument("--head-epochs", type=int, default=4)
    ap.add_argument("--unfreeze-epochs", type=int, default=2)
    ap.add_argument("--student-lr", type=float, default=5e-5)
    ap.add_argument("--init", type=Path, default=REPO / "core" / "assets" / "model")
    ap.add_argument("--steps", type=int, default=30, help="downstream fine-tuning steps")
    ap.add_argument("--epochs", type=int, default=24, help="scratch: epochs of the built-in recipe")
    ap.add_argument("--lr", type=float, help="downstream learning rate (default: train finetune's, 1e-6)")
    ap.add_argument("--tag", default="", help="downstream: a suffix of the run names (another recipe)")
    ap.add_argument("--evaluator", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="report: retrieval draws")
    ap.add_argument("--stride", type=int, default=30, help="report: frames between test windows")
    ap.add_argument("--parts", type=lambda t: t.split(","), default=["curves", "ablation", "downstream"],
                    help="report: which parts (curves, ablation, downstream, scratch)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.work = args.work.resolve()
    if args.what == "moclip":
        cmd_moclip(args)
    elif args.what == "downstream":
        cmd_downstream(args)
    elif args.what == "scratch":
        cmd_scratch(args)
    else:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from moclip_study_report import report

        report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
