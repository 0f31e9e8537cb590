"""`motionclip render` and `motionclip embed-frames` on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from motionclip.core.argtypes import describe, frame_list, image_size, int_at_least


def _renderer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--renderer", default="pyrender", help="pyrender (default; offscreen EGL, OSMesa fallback) or "
                                                          "blender (a Blender subprocess)")
    p.add_argument("--body", default="mannequin", help="mannequin (default; mannequin-x wooden mannequin, no "
                   "licensed file), smpl (your model file: --smpl-model / $MOTIONCLIP_SMPL_MODEL) or skeleton")
    p.add_argument("--smpl-model", type=Path, metavar="PATH", help="SMPL / SMPL-H / SMPL-X model file for --body smpl")
    p.add_argument("--blender", metavar="PATH", help="Blender executable, or a Python with the bpy module "
                   "(default: $MOTIONCLIP_BLENDER, else .venv-blender/bin/python, else `blender` on PATH)")
    p.add_argument("--engine", default="workbench", choices=["workbench", "cycles", "eevee"],
                   help="Blender render engine (default workbench)")
    p.add_argument("--samples", type=int_at_least(1), default=32, help="Cycles / EEVEE samples (default 32)")
    p.add_argument("--shading", default="lambert", choices=["lambert", "pbr"],
                   help="pyrender shading: lambert (default, fast) or pbr (pyrender's own shaders)")


def _renderer_options(args) -> dict:
    if args.renderer != "blender":
        return {"shading": args.shading}
    return {"blender": args.blender, "engine": args.engine, "samples": args.samples}


def add_render(p: argparse.ArgumentParser) -> None:
    describe(p, ("Render a motion (any readable motion file: BVH, AMASS npz, JSON, .motion, DeepMimic) headless. "
                 "The camera keeps the whole body in frame over the whole clip; a floor and lights are added. "
                 "Output by --out: FILE.mp4 (H.264, ffmpeg from imageio-ffmpeg), FILE.gif, a folder (one PNG per "
                 "frame), or FILE.png with --contact-sheet (a grid of frames in one picture)."),
             ["motionclip render walk.bvh --out walk.mp4",
              "motionclip render walk.bvh --out sheet.png --contact-sheet --frames 0:120:10",
              "motionclip render wave.json --out frames/ --renderer blender --body skeleton --size 512",
              "motionclip render wave.json --out wave.mp4 --renderer blender --engine cycles --samples 16"])
    p.add_argument("motion", type=Path, metavar="MOTION_FILE")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.mp4|FILE.gif|DIR|FILE.png")
    _renderer_args(p)
    p.add_argument("--size", type=image_size, default=(224, 224), metavar="N|WxH", help="pixels (default 224)")
    p.add_argument("--camera", default="fit", choices=["fit", "follow", "frame"],
                   help="fit: one fixed camera fitted to the whole clip (default); follow: moves with the body; "
                        "frame: every frame fitted on its own")
    p.add_argument("--azimuth", type=float, default=30.0, help="view direction, degrees about the vertical from the "
                                                                "front (+Z) toward the left (+X) (default 30)")
    p.add_argument("--elevation", type=float, default=12.0, help="degrees above the horizon (default 12)")
    p.add_argument("--no-floor", action="store_true", help="plain body on the background, no floor")
    p.add_argument("--frames", type=frame_list, metavar="LIST", help="frames to render: 0,30,59 or 0:120 or 0:120:10 "
                                                                 "(default: all; a contact sheet: 16 spread over the clip)")
    p.add_argument("--fps", type=float, help="resample to this frame rate first (default: the motion's)")
    p.add_argument("--contact-sheet", action="store_true", help="one PNG with a grid of frames (--out FILE.png)")
    p.add_argument("--columns", type=int_at_least(1), help="contact sheet columns (default: about square)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_render)


def add_embed_frames(p: argparse.ArgumentParser) -> None:
    describe(p, ("For every clip of the dataset, render the chosen frames (and the same frames of the mirrored "
                 "clip) as a plain body on white, embed them with the CLIP image tower, and store them in "
                 "DIR/cache/images-<encoder>-<fingerprint>-<settings>/, one file per clip. `train autoencoder` "
                 "with the same encoder then adds the image loss. Re-running skips finished clips; the cache "
                 "counts as complete only when every clip is done (COMPLETE.json, written last)."),
             ["motionclip embed-frames --data data --encoder clip:ViT-B/32",
              "motionclip embed-frames --data data --encoder clip:/models/ViT-B-32.pt --policy random:4 --workers 2"],
             after="\nnotes:\n"
                   "  CLIP weights load from local files only (~/.cache/clip/ViT-B-32.pt or $MOTIONCLIP_CLIP_DIR);\n"
                   "  clip-random:ViT-B/32 (random weights) exists for timing only: its embeddings mean nothing.")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="a dataset directory")
    p.add_argument("--encoder", default="clip:ViT-B/32", metavar="SPEC",
                   help="a CLIP encoder spec (default clip:ViT-B/32); the trainer must use the same one")
    p.add_argument("--policy", default="middle", metavar="middle|random:K",
                   help="frames per clip: middle of each training window (default), or K random frames")
    p.add_argument("--window", type=int_at_least(1), default=60, help="training window for --policy middle (default 60)")
    p.add_argument("--stride", type=int_at_least(1), default=30, help="window stride for --policy middle (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of --policy random:K (default 0)")
    p.add_argument("--no-mirror", action="store_true", help="skip the mirrored frames (the trainer then falls back "
                                                            "to the unmirrored embedding for mirrored windows)")
    _renderer_args(p)
    p.add_argument("--size", type=int_at_least(8), default=224, help="pixels, square (default 224)")
    p.add_argument("--workers", type=int_at_least(0), default=None,
                   help="render processes (0: render in this process; default: 0 on a CPU-only machine with "
                        "2 cores or fewer, else half the cores up to 4)")
    p.add_argument("--batch-size", type=int_at_least(1), default=32, help="images per CLIP forward pass (default 32)")
    p.add_argument("--device", default=None, help="device for CLIP (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_embed_frames)


def cmd_render(args) -> int:
    import numpy as np

    from .api import get_renderer, load_motion_file, render_frames
    from .bodies import BODIES, RenderError, make_body
    from .scene import SceneOptions
    from .video import check_writable, contact_sheet, output_kind, write_frames_dir, write_gif, write_mp4, write_png

    if args.renderer not in ("pyrender", "blender"):
        raise RenderError(f"unknown renderer {args.renderer!r}; choose pyrender or blender")
    if args.body not in BODIES:
        raise RenderError(f"unknown body {args.body!r}; choose one of {', '.join(BODIES)}")
    kind = output_kind(args.out, args.contact_sheet)
    check_writable(args.out, kind)
    motion = load_motion_file(args.motion)
    if args.fps:
        if not 1 <= args.fps <= 240:
            raise RenderError(f"--fps {args.fps} is out of range 1..240")
        motion = motion.resample(args.fps)
    frames = args.frames
    if frames is None and kind == "png":
        n = min(16, motion.num_frames)
        frames = sorted({int(round(x)) for x in np.linspace(0, motion.num_frames - 1, n)})
    if frames is not None:
        bad = [f for f in frames if not 0 <= f < motion.num_frames]
        if bad:
            raise RenderError(f"--frames: frame {bad[0]} is out of range; {args.motion} has {motion.num_frames} frames "
                              f"(0..{motion.num_frames - 1})")
    if kind == "png" and not args.contact_sheet and len(frames) != 1:  # before any rendering
        raise RenderError(f"{args.out}: one PNG holds one frame; give --frames N, --contact-sheet, or a folder")
    opts = SceneOptions(size=args.size, camera=args.camera, azimuth=args.azimuth, elevation=args.elevation,
                        floor=not args.no_floor)
    body = make_body(args.body, smpl_model=args.smpl_model)
    get_renderer(args.renderer, **_renderer_options(args))  # a missing Blender or OpenGL fails before any work
    count = len(frames) if frames is not None else motion.num_frames
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=count, desc=f"rendering ({args.renderer}, {args.body})", unit="frame", file=sys.stderr)
    try:
        images = render_frames(motion, frames, body=body, renderer=args.renderer, options=opts,
                               renderer_options=_renderer_options(args), progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    # A video of a subset of frames plays at the rate those frames were taken.
    fps = motion.fps
    if frames is not None and len(frames) > 1:
        steps = np.diff(frames)
        if (steps > 0).all() and (steps == steps[0]).all():
            fps = motion.fps / float(steps[0])
    if kind == "mp4":
        write_mp4(images, args.out, fps)
    elif kind == "gif":
        write_gif(images, args.out, fps)
    elif kind == "png":
        if args.contact_sheet:
            write_png(contact_sheet(images, args.columns), args.out)
        else:
            write_png(images[0], args.out)
    else:
        write_frames_dir(images, args.out, frames if frames is not None else range(len(images)))
    what = {"mp4": "MP4", "gif": "GIF", "png": "contact sheet" if args.contact_sheet else "PNG", "dir": "PNG frames"}[kind]
    print(f"wrote {args.out} ({what}: {len(images)} frames, {images.shape[2]}x{images.shape[1]}"
          + (f", {fps:g} fps" if kind in ("mp4", "gif") else "") + ")")
    return 0


def cmd_embed_frames(args) -> int:
    from .bodies import RenderError
    from .embed import EmbedSettings, embed_frames

    settings = EmbedSettings(policy=args.policy, window=args.window, stride=args.stride, seed=args.seed,
                             mirror=not args.no_mirror, renderer=args.renderer, body=args.body, size=args.size,
                             engine=args.engine, shading=args.shading)
    if args.body == "smpl" and args.smpl_model is None:
        import os
        if not os.environ.get("MOTIONCLIP_SMPL_MODEL"):
            raise RenderError("--body smpl needs --smpl-model PATH or $MOTIONCLIP_SMPL_MODEL")
    report = embed_frames(args.data, args.encoder, settings, workers=args.workers, batch_size=args.batch_size,
                          smpl_model=str(args.smpl_model) if args.smpl_model else None,
                          renderer_options=_renderer_options(args), progress=not args.quiet, device=args.device)
    rate = report.images / report.seconds if report.seconds > 0 and report.images else 0.0
    print(f"{report.folder}: {report.clips} clips; {report.done_before} already cached, {report.rendered} rendered now "
          f"({report.images} images in {report.seconds:.1f} s, {rate:.1f} images/s)")
    if report.failed:
        for cid, msg in sorted(report.failed.items()):
            print(f"  failed: {cid}: {msg}", file=sys.stderr)
        print(f"error: {len(report.failed)} clip(s) failed; the cache is not complete (run again to retry them)",
              file=sys.stderr)
        return 1
    print("complete: the trainer uses it with the same --encoder")
    return 0
