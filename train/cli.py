"""`motionclip train ...` and `motionclip eval` on the command line: the training part's commands, whole."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from motionclip.core.argtypes import positive


def add_trainer(tsub, name: str, help: str, description: str, out: str = "RUN") -> argparse.ArgumentParser:
    """The `train NAME` subcommand with its --data DIR and --out (metavar `out`), for the trainer to add the rest."""
    q = tsub.add_parser(name, help=help, description=description)
    q.add_argument("--data", type=Path, required=True, metavar="DIR")
    q.add_argument("--out", type=Path, required=True, metavar=out)
    return q


def add_train(p: argparse.ArgumentParser) -> None:
    from motionclip.train import evaluator, moclip_cli
    from motionclip.train.autoencoder import TRAIN_PRESETS

    tsub = p.add_subparsers(dest="train_command", metavar="MODEL")
    tsub.required = True
    q = add_trainer(tsub, "autoencoder", help="train the MotionCLIP auto-encoder on a dataset directory",
                    description="Train the MotionCLIP auto-encoder on DIR (from `motionclip data import` / `synth`), "
                                "aligned with a frozen text encoder. Writes RUN/config.json, RUN/model.safetensors, "
                                "checkpoints, metrics.csv and TensorBoard logs. Several GPUs or nodes: launch with "
                                "`torchrun --nproc_per_node N -m motionclip.core.cli train autoencoder ...`.")
    q.add_argument("--config", metavar="PRESET|FILE.json",
                   help=f"training preset ({', '.join(TRAIN_PRESETS)}) or a JSON file of TrainConfig fields "
                        "(default small)")
    q.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint, same settings")
    q.add_argument("--init", type=Path, metavar="RUN0",
                   help="start from the weights (and feature statistics) of another run with the same model, e.g. "
                        "the built-in model's folder, to train it further on your data; a fresh schedule and optimizer")
    q.add_argument("--epochs", type=positive(int))
    q.add_argument("--batch-size", type=positive(int), help="global batch size (split over processes)")
    q.add_argument("--lr", type=positive(float))
    q.add_argument("--encoder", help="text encoder: minilm (default, offline), clip:ViT-B/32, clip:/path/to/weights.pt")
    q.add_argument("--seed", type=int)
    q.add_argument("--window", type=positive(int), help="frames per training window (default 60)")
    q.add_argument("--min-window", type=int, help="with it, windows of random length in [min, window]")
    q.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (quick runs)")
    q.add_argument("--checkpoint-every", type=positive(int), help="epochs between checkpoints (default 1)")
    q.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    q.add_argument("--no-text-cache", action="store_true", help="re-encode texts every batch (for benchmarks)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_autoencoder)
    moclip_cli.add_parsers(tsub)
    evaluator.add_parser(tsub)
    p.description = f"Train models, one subcommand each: {', '.join(tsub.choices)}."


def cmd_train_autoencoder(args) -> int:
    from motionclip.core.run import require_section
    from motionclip.train.autoencoder import load_train_config, train_autoencoder

    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "encoder": args.encoder,
                 "seed": args.seed, "window": args.window, "min_window": args.min_window,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "checkpoint_every": args.checkpoint_every,
                 "num_workers": args.workers, "text_cache": False if args.no_text_cache else None,
                 "init": str(args.init) if args.init else None}
    if args.resume:
        from motionclip.core.encoders import run_encoder_spec

        saved = require_section(args.out, "train")  # a resumed run keeps its settings
        if args.encoder is None and saved.get("encoder"):  # a run directory may not choose files to load
            saved = {**saved, "encoder": run_encoder_spec({"spec": saved["encoder"]}, args.out)}
        cfg = load_train_config(None, {**saved, **{k: v for k, v in overrides.items() if v is not None}})
    else:
        cfg = load_train_config(args.config or "small", overrides)
    metrics = train_autoencoder(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet)
    return print_trained(f"trained {args.out}", metrics,
                         ("epoch", "train_total", "val_total", "val_mpjpe_mm", "samples_per_s"))


def print_trained(what: str, metrics: dict, keys: tuple[str, ...], then: str = "") -> int:
    """Print `what: {those of the final metrics named in keys}` and `then`, once (on the main process of a
    torchrun); the command's exit code, 0."""
    if int(os.environ.get("RANK", "0")) == 0:
        shown = {k: metrics[k] for k in keys if k in metrics}
        print(f"{what}: {json.dumps(shown)}{then}")
    return 0


def add_eval(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Reconstruction MPJPE (plain and pelvis-aligned), zero-shot recognition top-1/top-5 over the split's action "
        "labels, the share of generated motions recognised as their prompt's action, and liveliness: per action, "
        "generated / real mean speed of the ankles and wrists relative to the pelvis and of the root (plain prompts, "
        "--seeds seeds). With --evaluator EVAL (from `motionclip train evaluator`): the standard text-to-motion "
        "metrics (R-precision top-1/2/3 over batches of 32, FID, MM-Dist, Diversity, MultiModality, recognition "
        "top-1/5, MPJPE) with their spread over --repeats draws, the real motions scored by the same evaluator as the "
        "reference row; a Markdown table, and with --out a JSON file and a plot. Then, per action of the split: "
        "liveliness, the evaluator's top-1 for the generated motions (plain prompts, --seeds seeds) and for the real "
        "clips, FID / diversity against the real clips, and pelvis-aligned reconstruction MPJPE.")
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--source", help="only clips whose texts came from this source, e.g. bandai-namco")
    p.add_argument("--seeds", type=positive(int), default=5, help="generated motions per action (default 5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--evaluator", type=Path, metavar="EVAL", help="an evaluator run: standard text-to-motion metrics")
    p.add_argument("--text-encoder", metavar="SPEC", help="load the run's text encoder from this spec (e.g. moclip:RUN, "
                                                         "when the run folder moved); it must be the encoder the run was "
                                                         "trained with, by content")
    p.add_argument("--repeats", type=int, default=5, help="evaluation draws for the spread (default 5)")
    p.add_argument("--stride", type=int, default=15, help="frames between evaluation windows (default 15)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write eval.json and eval.md here (and eval.png with "
                                                          "--evaluator)")
    p.add_argument("--paraphrases", nargs="?", const="default", metavar="FILE",
                   help="evaluate on training-style texts and on the paraphrase test set (default: the project's "
                        "train/paraphrases.tsv, hand-written wordings no training text uses; or a TSV file of "
                        "'action<TAB>text' lines): retrieval in the model's own space, liveliness with paraphrase "
                        "prompts, and with --evaluator the standard metrics and recognition of motions generated from "
                        "paraphrases")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    if args.paraphrases:  # training-style texts against the paraphrase test set (train/paraphrase_eval.py)
        from motionclip.train.paraphrase_eval import cmd_eval_paraphrases

        return cmd_eval_paraphrases(args)
    if args.evaluator:  # the standard text-to-motion metrics (train/t2m_eval.py)
        from motionclip.train.t2m_eval import cmd_eval_t2m

        return cmd_eval_t2m(args)
    from motionclip.core.inference import MotionModel
    from motionclip.train.evaluate import evaluate, format_table
    from motionclip.train.liveliness import format_report, moves_report, write_report

    model = MotionModel(args.checkpoint, device=args.device)
    result = evaluate(model, args.data, split=args.split, source=args.source, seeds=args.seeds)
    # Liveliness (train/liveliness.py); reconstruction as just measured. Classification needs --evaluator.
    result["moves"] = moves_report(model, args.data, split=args.split, source=args.source, seeds=args.seeds,
                                   reconstruction=(result["mpjpe_mm"], result["mpjpe_pelvis_aligned_mm"]))
    text = format_table(result) + "\n\n" + format_report(result["moves"])
    if args.out:
        paths = write_report(result, args.out, stem="eval", markdown=text)
        if not args.json:
            print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(json.dumps(result, indent=1) if args.json else text)
    return 0
