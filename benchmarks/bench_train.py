"""Training throughput on this CPU, with and without the text-embedding cache.

    python benchmarks/bench_train.py [--steps 15] [--encoder minilm]

Trains the built-in recipe (the `builtin` training preset: 3+3 layers, latent = the encoder's
width) with 60-frame windows for a few steps on
synthetic clips, once with text embeddings cached (computed once per unique text) and once
re-encoding every batch's texts as MotionCLIP's own code did, and prints samples/s of each.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

from motionclip.core.data.synth import synthesize
from motionclip.train.autoencoder import load_train_config, train_autoencoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        synthesize(data, clips=120, seed=0, progress=False)
        results = {}
        for cached in (True, False):
            run = Path(tmp) / f"run-{cached}"
            cfg = load_train_config("builtin", dict(encoder=args.encoder, epochs=2, batch_size=args.batch_size,
                                                    window=60, min_window=0, max_steps_per_epoch=args.steps,
                                                    text_cache=cached))
            train_autoencoder(data, run, cfg, progress=False)
            with (run / "metrics.csv").open() as f:
                rows = list(csv.DictReader(f))
            results[cached] = float(rows[-1]["samples_per_s"])  # the second epoch: warm
        print(f"encoder {args.encoder}, batch {args.batch_size} x 60 frames, {args.steps} steps: "
              f"{results[True]:.1f} samples/s with the text cache, {results[False]:.1f} without "
              f"({results[True] / results[False]:.2f}x)")


if __name__ == "__main__":
    main()
