"""Text -> 120-frame motion latency, one request at a time (targets on a 2-core CPU: p50 <= 100 ms
with the offline encoder, <= 200 ms with a ViT-B/32-sized CLIP text tower).

    python benchmarks/bench_generate.py [--checkpoint RUN] [--requests 30]

Times MotionModel.generate end to end: text encoding, decoding 120 frames, conversion to a
Motion. The first row times --checkpoint's model and encoder, or else the built-in model with its
offline encoder; the CLIP row (whose real weights cannot be downloaded here) pairs a random
ViT-B/32-sized text tower with a random model of the built-in model's architecture: latency
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from motionclip.core.encoders import load_encoder
from motionclip.core.inference import MotionModel
from motionclip.core.models.motionclip import MotionCLIP, MotionCLIPConfig
from motionclip.core.run import WEIGHTS, read_config, save_weights, write_config

PROMPTS = ["a person walks forward", "someone waves with the left hand", "a man jumps in place", "a person kicks",
           "a woman bows politely", "someone runs in a circle", "a person sits down", "a person claps happily"]


def random_run(encoder, model_cfg: dict, folder: Path) -> Path:
    cfg = MotionCLIPConfig.from_dict({**model_cfg, "latent_dim": encoder.dim})
    save_weights(MotionCLIP(cfg).state_dict(), folder / WEIGHTS)
    write_config(folder, {"model": cfg.to_dict(), "encoder": {"spec": encoder.name, **encoder.identity()},
                          "data": {"fps": 30.0}, "latent_norm": 1.0})
    return folder


def time_model(model: MotionModel, requests: int) -> tuple[float, float]:
    model.generate(PROMPTS[0], frames=120)  # warm-up
    times = []
    for i in range(requests):
        t0 = time.perf_counter()
        model.generate(f"{PROMPTS[i % len(PROMPTS)]} {i}", frames=120, seed=i)
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, device: cpu")
    builtin = Path(__file__).resolve().parents[1] / "core" / "assets" / "model"
    base = read_config(builtin)["model"] if (builtin / "config.json").is_file() else \
        dict(enc_layers=2, dec_layers=2, heads=4, ff_dim=512, dropout=0.1)
    base = {k: v for k, v in base.items() if k != "latent_dim"}
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        if args.checkpoint or (builtin / "config.json").is_file():
            run = args.checkpoint or builtin
            model = MotionModel(run, device="cpu")
            rows.append((f"{'built-in model' if run == builtin else run} ({model.encoder.name} text encoder)", model))
        else:
            enc = load_encoder("minilm", device="cpu")
            rows.append(("offline encoder (MiniLM, 384-d), random-weight model", MotionModel(
                random_run(enc, base, Path(tmp) / "minilm"), device="cpu", encoder=enc)))
        enc = load_encoder("clip-random:ViT-B/32", device="cpu", text_only=True)
        rows.append(("ViT-B/32-sized CLIP text tower (random weights), random-weight model", MotionModel(
            random_run(enc, base, Path(tmp) / "clip"), device="cpu", encoder=enc)))
        for name, model in rows:
            p50, p95 = time_model(model, args.requests)
            print(f"{name}: 120 frames, p50 {p50:.1f} ms, p95 {p95:.1f} ms over {args.requests} requests")


if __name__ == "__main__":
    main()
