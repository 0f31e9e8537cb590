"""Rendering throughput at 224x224, per renderer and body, and embed-frames end to end.

    python benchmarks/bench_render.py [--frames 120] [--repeat 3] [--blender] [--embed-clips 12]
                                      [--smpl-model PATH]

Targets on a 2-core CPU with pyrender over EGL (Mesa's software rasteriser, no GPU): >= 80 frames/s
for the skeleton, >= 30 frames/s for a body mesh. Each pyrender row renders a 120-frame synthetic walk
(camera fitted to the clip, floor, two lights) `--repeat` times after a warm-up and reports the best
and median rates; posing (skinning), normals and the camera fit are included, the encoder is not.
Each body is timed with our Lambert shaders (the default) and, beside it, pyrender's own PBR ones.
Blender rows (--blender) include Blender's start-up, as a user's call does. The embed-frames row
runs the whole command path (render workers, CLIP image tower, cache files) on a synthetic dataset
with a random-weight ViT-B/32: real CLIP weights cannot be downloaded here, and the timing does not
depend on the weights. The machine's load average is printed: other processes slow every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def rate(fn, frames: int, repeat: int) -> tuple[float, float]:
    fn()  # warm-up: OpenGL context, shaders, body caches
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        rates.append(frames / (time.perf_counter() - t0))
    return max(rates), statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--blender", action="store_true", help="also time the Blender renderer (Workbench)")
    ap.add_argument("--embed-clips", type=int, default=12, help="clips in the embed-frames dataset (0: skip)")
    ap.add_argument("--workers", type=int, default=None, help="embed-frames render workers (default: as the command)")
    ap.add_argument("--smpl-model", help="also time your SMPL model's mesh")
    ap.add_argument("--only-embed", action="store_true", help="skip the renderer rows")
    args = ap.parse_args()

    from motionclip.core.data.synth import generate_clip
    from motionclip.render import SceneOptions, make_body, render_frames
    from motionclip.render.pyrender_backend import import_pyrender

    import_pyrender()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}")
    motion, _ = generate_clip("walk", np.random.default_rng(0), duration=args.frames / 30.0 + 0.1)
    motion = motion.crop(0, args.frames)
    opts = SceneOptions(size=args.size)
    bodies = [("skeleton", make_body("skeleton")), ("mannequin", make_body("mannequin")),
              ("mannequin (full 48k faces)", make_body("mannequin", max_faces=0))]
    if args.smpl_model:
        bodies.append(("smpl", make_body("smpl", smpl_model=args.smpl_model)))
    print(f"\n{'renderer':<10} {'body':<40} {'faces':>7} {'best f/s':>9} {'median f/s':>11}")
    for name, body in ([] if args.only_embed else bodies):
        for shading in ("lambert", "pbr"):  # ours (default) and pyrender's own shaders, side by side
            best, med = rate(lambda: render_frames(motion, None, body=body, options=opts,
                                                   renderer_options={"shading": shading}),
                             motion.num_frames, args.repeat)
            label = name if shading == "lambert" else f"{name}, pyrender's PBR"
            print(f"{'pyrender':<10} {label:<40} {body.num_faces:>7} {best:>9.1f} {med:>11.1f}")
    if args.blender and not args.only_embed:
        from motionclip.render.blender_backend import find_blender

        print(f"blender: {find_blender()[1]}")
        n = min(60, motion.num_frames)
        for name, body in bodies[:2]:
            best, med = rate(lambda: render_frames(motion, list(range(n)), body=body, options=opts,
                                                   renderer="blender"), n, max(1, args.repeat - 1))
            print(f"{'blender':<10} {name + ' (workbench)':<40} {body.num_faces:>7} {best:>9.1f} {med:>11.1f}")

    if args.embed_clips:
        import torch

        from motionclip.core.data.synth import synthesize
        from motionclip.core.encoders import load_encoder
        from motionclip.render.embed import EmbedSettings, default_workers, embed_frames

        enc = load_encoder("clip-random:ViT-B/32", device="cpu")
        x = torch.rand(32, 3, 224, 224)
        enc.encode_image(x[:4])
        t0 = time.perf_counter()
        enc.encode_image(x)
        clip_rate = 32 / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            synthesize(data, clips=args.embed_clips, seed=0, progress=False)
            t0 = time.perf_counter()
            workers = default_workers() if args.workers is None else args.workers
            rep = embed_frames(data, enc, EmbedSettings(), workers=workers, progress=False)
            wall = time.perf_counter() - t0
        print(f"\nembed-frames, {args.embed_clips} synthetic clips, policy middle + mirrored, mannequin, pyrender, "
              f"random ViT-B/32, {workers} render worker process(es):")
        print(f"  {rep.images} images in {wall:.1f} s: {rep.images / wall:.1f} images/s end to end "
              f"(worker start-up included); the CLIP image tower alone: {clip_rate:.1f} images/s")


if __name__ == "__main__":
    main()
