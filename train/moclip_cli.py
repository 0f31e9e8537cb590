"""`motionclip train moclip` and `motionclip train finetune` on the command line (registered in train/cli.py),
and the auto-encoder config that `train finetune` builds from its --init run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motionclip.train.moclip import TRAIN_PRESETS, TrainError, load_moclip_config, train_moclip


def cmd_train_moclip(args) -> int:
    from motionclip.core.run import read_config, require_section
    from motionclip.train.cli import print_trained

    overrides = {"teacher": args.teacher, "lambda_distill": args.lambda_distill, "batch_size": args.batch_size,
                 "seed": args.seed, "window": args.window, "min_window": args.min_window,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "checkpoint_every": args.checkpoint_every,
                 "num_workers": args.workers, "phase_epochs": args.phase_epochs}
    if args.resume:
        saved = read_config(args.out)
        require_section(args.out, "train")
        if saved.get("kind") != "moclip":
            raise TrainError(f"{args.out}: not a MoCLIP run; resume it with the command that trained it")
        cfg = load_moclip_config(None, {**saved["train"], **{k: v for k, v in overrides.items() if v is not None}})
    else:
        cfg = load_moclip_config(args.config or "small", overrides)
    metrics = train_moclip(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet,
                           until_epoch=args.until_epoch)
    return print_trained(f"trained {args.out}", metrics, ("epoch", "phase", "train_total", "val_total",
                                                          "val_r1_motion_to_text", "samples_per_s"),
                         f"; use it as a text encoder with --encoder moclip:{args.out}")


def finetune_config(init: str | Path, encoder: str, overrides: dict[str, Any]):
    """The auto-encoder training config that fine-tunes run `init` with another text encoder: the
    init run's settings and architecture, its weights as the start, lr 1e-6 unless overridden."""
    from motionclip.core.run import read_config
    from motionclip.train.autoencoder import load_train_config

    saved = read_config(init)
    kind, _, arg = encoder.partition(":")
    if kind == "moclip" and arg:
        encoder = f"moclip:{Path(arg).expanduser().resolve()}"  # the run records where the student lives
    if saved.get("kind") == "moclip":
        raise TrainError(f"--init {init}: that is a MoCLIP run (a text encoder); give a MotionCLIP run")
    train = dict(saved["train"])
    train.pop("init", None)
    base = {**train, "model_overrides": dict(saved["model"]), "encoder": encoder, "lr": 1e-6, "epochs": 5,
            "init": str(init)}
    if "warmup_steps" in train:  # the init run's warm-up would hold a short fine-tuning far below its rate
        base["warmup_steps"] = 0
    base.update({k: v for k, v in overrides.items() if v is not None})
    return load_train_config(None, base)


def cmd_train_finetune(args) -> int:
    from motionclip.core.run import require_section
    from motionclip.train.autoencoder import load_train_config, train_autoencoder
    from motionclip.train.cli import print_trained

    overrides = {"lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "checkpoint_every": args.checkpoint_every,
                 "warmup_steps": args.warmup_steps}
    if args.resume:
        saved = require_section(args.out, "train")
        cfg = load_train_config(None, {**saved, **{k: v for k, v in overrides.items() if v is not None}})
    else:
        if not args.init or not args.encoder:
            raise TrainError("train finetune needs --init MOTIONCLIP_RUN and --encoder SPEC (e.g. moclip:RUN)")
        cfg = finetune_config(args.init, args.encoder, overrides)
    metrics = train_autoencoder(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet)
    return print_trained(f"fine-tuned {args.out}", metrics, ("epoch", "train_total", "val_total", "val_mpjpe_mm"))


def add_parsers(tsub) -> None:
    """`motionclip train moclip` and `train finetune`, added to `train`'s subcommands (train/cli.py)."""
    from motionclip.core.argtypes import nonnegative_float, positive, positive_ints
    from motionclip.train.cli import add_trainer

    q = add_trainer(
        tsub, "moclip", help="train MoCLIP: a motion-aware text encoder (student) against a frozen teacher",
        description="Train MoCLIP on DIR: a motion encoder head and a student copy of the teacher text encoder, with a "
                    "contrastive loss (learnable temperature) + lambda_distill * MSE(student, teacher) + (1 - cos(student, "
                    "motion)), through phases (default: the head alone, then the student too), AdamW, cosine schedule, "
                    "gradient clipping. Writes RUN/config.json, RUN/model.safetensors (student + head), checkpoints, "
                    "metrics.csv and TensorBoard logs. Then use the student anywhere a text encoder goes: "
                    "--encoder moclip:RUN. Several GPUs: torchrun --nproc_per_node N -m motionclip.core.cli train moclip ...")
    q.add_argument("--teacher", help="teacher text encoder spec: minilm (default, offline), clip:ViT-B/32, "
                                     "clip:/path/to/weights.pt, clip-random:tiny (tests)")
    q.add_argument("--config", metavar="PRESET|FILE.json",
                   help=f"preset ({', '.join(TRAIN_PRESETS)}; default small) or a JSON file of MoCLIPTrainConfig fields")
    q.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint, same settings")
    q.add_argument("--lambda-distill", type=nonnegative_float, help="weight of the distillation MSE (default 0.4)")
    q.add_argument("--phase-epochs", type=positive_ints, metavar="N,M,...", help="epochs of each phase, e.g. 35,15")
    q.add_argument("--batch-size", type=int, help="global batch size (split over processes)")
    q.add_argument("--seed", type=int)
    q.add_argument("--window", type=int, help="frames per window, at most (default 90)")
    q.add_argument("--min-window", type=int, help="shortest window; 0 = all windows of --window frames")
    q.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (quick runs)")
    q.add_argument("--checkpoint-every", type=int, help="epochs between checkpoints (default 1)")
    q.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    q.add_argument("--until-epoch", type=int, metavar="N", help="stop after epoch N (continue later with --resume)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_moclip)

    q = tsub.add_parser(
        "finetune", help="fine-tune a trained MotionCLIP auto-encoder with another text encoder (e.g. MoCLIP)",
        description="Start from the weights and settings of a MotionCLIP run (--init) and train it further with another "
                    "text encoder of the same dimension, by default at lr 1e-6 for 5 epochs (MoCLIP's downstream "
                    "recipe). The new run records the new encoder, so generation, the server and evaluation use it.")
    q.add_argument("--init", type=Path, metavar="RUN", help="the MotionCLIP run to start from")
    q.add_argument("--encoder", help="the text encoder to fine-tune with, e.g. moclip:RUN")
    q.add_argument("--data", type=Path, required=True, metavar="DIR")
    q.add_argument("--out", type=Path, required=True, metavar="RUN2")
    q.add_argument("--lr", type=positive(float), help="learning rate (default 1e-6)")
    q.add_argument("--epochs", type=int, help="epochs (default 5)")
    q.add_argument("--warmup-steps", type=int, help="learning-rate warm-up steps (default 0: the init run's warm-up "
                                                    "is not repeated)")
    q.add_argument("--batch-size", type=int)
    q.add_argument("--seed", type=int)
    q.add_argument("--max-steps-per-epoch", type=int)
    q.add_argument("--checkpoint-every", type=int)
    q.add_argument("--resume", action="store_true", help="continue RUN2 from its last checkpoint")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_finetune)
