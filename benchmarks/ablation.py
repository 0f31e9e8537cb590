"""A/B of the built-in recipe's choices: each variant changes one thing, same data, same steps.

    python benchmarks/ablation.py --data WORKDIR/data [--steps 1500] [--variants recipe,post_ln,...] [--out FILE.md]

Trains the `builtin` training preset and one-change variants of it for the same number of steps (same
data, seed and batch order; the minutes each took are printed beside), then measures on the Bandai-Namco
validation styles what users see: liveliness (generated / real speed of the main limb, per action, from
plain prompts; mean and actions in [0.6, 1.5]) and reconstruction (pelvis-aligned MPJPE). Prints a
Markdown table (and writes it to --out).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from motionclip.core.inference import MotionModel
from motionclip.train.autoencoder import TRAIN_PRESETS, load_train_config, train_autoencoder
from motionclip.train.liveliness import moves_report

# Each variant: (what changes, training-config changes on top of the `builtin` preset).
VARIANTS: dict[str, tuple[str, dict]] = {
    "recipe": ("the built-in recipe", {}),
    "raw_features": ("no per-feature normalisation", {"model_overrides": {"normalize": False}}),
    "post_ln": ("post-LayerNorm layers", {"model_overrides": {"norm_first": False}}),
    "query_dropout": ("dropout 0.1 on the decoder's positional queries", {"model_overrides": {"query_dropout": 0.1}}),
    "constant_lr": ("no warm-up, constant learning rate", {"warmup_steps": 0, "lr_schedule": "constant"}),
    "no_vel": ("velocity loss weight 0 (recipe: 100)", {"loss": {"vel": 0.0}}),
    "vel_300": ("velocity loss weight 300", {"loss": {"vel": 300.0}}),
}
STEPS_PER_EPOCH = 100


def variant_config(changes: dict, steps: int):
    base = copy.deepcopy(TRAIN_PRESETS["builtin"])
    for k, v in changes.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    epochs = max(1, -(-steps // STEPS_PER_EPOCH))
    return load_train_config(None, dict(base, epochs=epochs, max_steps_per_epoch=STEPS_PER_EPOCH))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the built-in recipe's dataset (train_builtin.sh WORKDIR/data)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per variant (default 1500)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", type=int, default=3, help="generated motions per action (default 3)")
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    lines = [f"Each row trained {args.steps} steps of batch 32 on {args.data.name} (same seed and batch order), "
             f"measured on the Bandai-Namco validation styles.", "",
             "| variant | what changes | minutes | liveliness, main limb (mean) | actions in 0.6-1.5 | ankles | wrists "
             "| pelvis-aligned MPJPE (mm) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            what, changes = VARIANTS[name]
            cfg = variant_config(changes, args.steps)
            run = Path(tmp) / name
            t0 = time.perf_counter()
            train_autoencoder(args.data, run, cfg, progress=False)
            minutes = (time.perf_counter() - t0) / 60
            r = moves_report(MotionModel(run, device="cpu"), args.data, split="val", source="bandai-namco",
                             seeds=args.seeds)
            m = r["mean_ratio"]
            fmt = lambda v: "-" if v is None else f"{v:.2f}"
            line = (f"| {name} | {what} | {minutes:.1f} | {fmt(m['main'])} | {r['in_target']['main']} of "
                    f"{r['measured']['main']} | {fmt(m['ankles'])} | {fmt(m['wrists'])} | "
                    f"{r['reconstruction']['mpjpe_pelvis_aligned_mm']:.1f} |")
            print(line, flush=True)
            lines.append(line)
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
