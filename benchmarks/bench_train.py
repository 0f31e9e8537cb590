"""Training throughput of the built-in recipe on this machine: the real thing, end to end.

    python benchmarks/bench_train.py [--data DIR] [--steps 60] [--previous] [--profile]

Runs `train_autoencoder` with the `builtin` training preset exactly as `train_builtin.sh` does (its model,
its 20 fps windows of 2-4 s in same-length batches of 32, mirroring, the text-embedding cache, all four
losses, the per-step bookkeeping, metrics.csv and TensorBoard logging), for two short epochs of `--steps`
steps, and prints the samples/s of the second (warm) epoch, the validation time per epoch and where the time
goes. With `--data` it uses your dataset (e.g. WORKDIR/data of train_builtin.sh, the figure the README
quotes); without it, 200 synthetic clips at 20 fps. `--previous` also times the recipe the built-in model
used before (30 fps windows of 1-4 s, latent-wide 3+3 post-LN layers, dropout 0.1) in the same run, for the
ratio. `--profile` prints the functions that take the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

import torch

from motionclip.core.data.synth import synthesize
from motionclip.train.autoencoder import load_train_config, train_autoencoder

# The recipe of the built-in model before this one (the model card's "before"), for the side-by-side ratio.
PREVIOUS = dict(model="small", model_overrides={"enc_layers": 3, "dec_layers": 3, "ff_dim": 768}, batch_size=16,
                lr=3e-4, window=120, min_window=30, stride=60, same_length_batches=False, warmup_steps=0,
                lr_schedule="constant", loss={"rc": 100.0, "rcxyz": 100.0, "vel": 100.0, "text": 10.0, "image": 1.0})


def time_recipe(data: Path, run: Path, steps: int, overrides: dict, profile: bool) -> dict:
    cfg = load_train_config("builtin", dict(overrides, epochs=2, max_steps_per_epoch=steps))
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    train_autoencoder(data, run, cfg, progress=False)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    loop = sum(float(r["seconds"]) for r in rows)
    out = {"samples_per_s": float(rows[-1]["samples_per_s"]), "batch": cfg.batch_size, "wall_s": wall,
           "train_loop_s": loop, "fps": None}
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
        out["profile"] = s.getvalue()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="a dataset directory (default: 200 synthetic clips at 20 fps)")
    ap.add_argument("--steps", type=int, default=60, help="steps per epoch (two epochs; the second is timed)")
    ap.add_argument("--previous", action="store_true", help="also time the previous built-in recipe, same run")
    ap.add_argument("--profile", action="store_true", help="print where the time goes")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine lowers every figure)")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            synthesize(data, clips=200, seed=0, fps=20, progress=False)
        rows = {"builtin": time_recipe(data, Path(tmp) / "run", args.steps, {}, args.profile)}
        if args.previous:
            rows["previous"] = time_recipe(data, Path(tmp) / "run-prev", args.steps, PREVIOUS, args.profile)
    for name, r in rows.items():
        print(f"{name:9s} {r['samples_per_s']:6.1f} samples/s (batch {r['batch']}, second epoch of {args.steps} steps; "
              f"data, losses and logging included); whole command {r['wall_s']:.1f} s, of which the training "
              f"loops {r['train_loop_s']:.1f} s (the rest: encoder loading, feature statistics, validation)")
        if "profile" in r:
            print(r["profile"])
    if "previous" in rows:
        print(f"ratio builtin / previous: {rows['builtin']['samples_per_s'] / rows['previous']['samples_per_s']:.2f}x")


if __name__ == "__main__":
    main()
