"""`motionclip convert`, `data`, `export-run` and `info`: motion files and datasets on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .argtypes import positive, split_ratios


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["bvh", "amass", "deepmimic", "json", "motion"],
                   help="input format (default: from the extension)")
    p.add_argument("--mapping", type=Path, metavar="FILE.json",
                   help="joint mapping for a skeleton no preset covers (see README: Retargeting a new skeleton)")
    p.add_argument("--preset", help="use this mapping preset instead of detecting one (see `motionclip data presets`)")
    p.add_argument("--up", choices=["y", "z"], help="up axis of the source (default: the preset's; AMASS: z)")
    p.add_argument("--extra-frames", choices=["error", "ignore"], default="error",
                   help="a BVH with more frame lines than its Frames: header: fail (default) or read the declared number")
    p.add_argument("--smpl-model", type=Path, metavar="PATH",
                   help="your SMPL / SMPL-H / SMPL-X model file for the rest skeleton (default: $MOTIONCLIP_SMPL_MODEL, "
                        "else the built-in neutral skeleton)")


def _mapping(args) -> object:
    from .io.retarget import Mapping, RetargetError, presets

    if args.mapping:
        return Mapping.load(args.mapping)
    if args.preset:
        known = presets()
        if args.preset not in known:
            raise RetargetError(f"unknown preset {args.preset!r}; presets: {', '.join(known)}")
        return known[args.preset]
    return None


def _skeleton(args):
    from .skeleton import load_skeleton

    return load_skeleton(getattr(args, "smpl_model", None))


# --- convert ---------------------------------------------------------------------------------------------------

def add_convert(p: argparse.ArgumentParser) -> None:
    p.description = ("Convert between motion formats by extension: read .bvh (any skeleton, retargeted to SMPL), .npz "
                     "(AMASS), .txt/.json (DeepMimic, our JSON), .motion; write .bvh, .npz, .json, .motion, .npy "
                     "(HumanML3D joints [T,22,3] at 20 fps).")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    add_input_options(p)
    p.add_argument("--fps", type=positive(float), help="resample to this frame rate")
    p.add_argument("--canonicalize", action="store_true", help="start at the origin facing +Z, feet on the floor")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from .io import load_source_motion, save_motion

    skeleton = _skeleton(args)
    motion, report = load_source_motion(args.input, format=args.format, mapping=_mapping(args), skeleton=skeleton,
                                        up=args.up, extra_frames=args.extra_frames)
    if args.fps:
        motion = motion.resample(args.fps)
    if args.canonicalize:
        motion = motion.canonicalize(skeleton)
    save_motion(motion, args.output, skeleton=skeleton)
    msg = f"wrote {args.output}: {motion.num_frames} frames at {motion.fps:g} fps"
    if report is not None:
        msg += (f"; retargeted with preset {report.mapping!r} ({report.mapped_joints} joints mapped): bone-direction "
                f"error {report.bone_dir_err_deg:.2f} deg mean (limbs {report.limb_dir_err_deg:.3f}, torso "
                f"{report.torso_dir_err_deg:.1f}, worst bone {report.bone_dir_err_max_deg:.1f}), "
                f"facing error {report.facing_err_deg:.2f} deg")
    print(msg)
    return 0


# --- data ------------------------------------------------------------------------------------------------------

def add_data(p: argparse.ArgumentParser) -> None:
    p.description = "Build and inspect the canonical SMPL dataset."
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    q = dsub.add_parser("import", help="import motion files / folders into a dataset directory",
                        description="Import BVH, AMASS npz, DeepMimic clips, our JSON / .motion files (files or folders) "
                                    "into DIR: one .motion per clip + index.json with texts and splits. Imports every "
                                    "good file, lists each failure and exits 1 if any failed.")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    q.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_input_options(q)
    q.add_argument("--texts", type=Path, metavar="FILE", help="texts per clip: CSV (file,text) or JSON {file: [texts]}")
    q.add_argument("--fps", type=positive(float), default=30.0, help="dataset frame rate (default 30)")
    q.add_argument("--splits", type=split_ratios, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL,TEST",
                   help="split ratios by clip (default 0.8,0.1,0.1)")
    q.add_argument("--split-seed", type=int, default=0, help="seed of the deterministic split (default 0)")
    q.add_argument("--split-by", metavar="LABEL", help="split by a label the clips share instead of by clip "
                   "(e.g. style: every clip of a Bandai-Namco style lands in the same split, so the test "
                   "split holds styles never trained on); clips without that label split by clip")
    q.add_argument("--no-canonicalize", action="store_true", help="keep the source's placement and facing")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--verbose", action="store_true", help="one line per imported clip")
    q.set_defaults(func=cmd_data_import)

    q = dsub.add_parser("synth", help="generate labelled synthetic motions",
                        description="Generate labelled procedural motions (walk, run, jump, wave, kick, ...) in SMPL "
                                    "rotation space. For tests and extra data; no substitute for real mocap.")
    q.add_argument("--out", type=Path, required=True, metavar="DIR")
    q.add_argument("--clips", type=positive(int), default=100)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fps", type=positive(float), default=30.0)
    q.add_argument("--actions", help="comma-separated subset of actions (default: all)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_data_synth)

    q = dsub.add_parser("info", help="summarise a dataset directory",
                        description="Clips, frames and minutes per split of a dataset directory, with example texts.")
    q.add_argument("dataset", type=Path)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_data_info)

    q = dsub.add_parser("presets", help="list the skeleton mapping presets",
                        description="List the built-in joint mappings used to retarget BVH skeletons onto SMPL "
                                    "(detected from joint names; force one with --preset, or give --mapping FILE).")
    q.set_defaults(func=cmd_data_presets)


def cmd_data_import(args) -> int:
    from tqdm import tqdm

    from .data.importer import import_files

    result = import_files(
        args.paths, args.out, fps=args.fps, format=args.format, mapping=_mapping(args), texts_file=args.texts,
        up=args.up, canonicalize=not args.no_canonicalize, extra_frames=args.extra_frames, splits=args.splits,
        split_seed=args.split_seed, split_by=args.split_by, skeleton=_skeleton(args),
        progress=None if args.quiet else (lambda it: tqdm(it, desc="importing", unit="file")),
    )
    for e in result.imported if args.verbose else []:
        r = e.get("retarget") or {}
        print(f"  {e['id']}: {e['frames']} frames, split {e['split']}"
              + (f", retarget error {r['bone_dir_err_deg']:.2f} deg" if r else ""))
    errs = [e["retarget"]["bone_dir_err_deg"] for e in result.imported if e.get("retarget")]
    summary = f"imported {len(result.imported)} clip(s) into {args.out}"
    if errs:
        summary += f" (bone-direction retarget error: mean {sum(errs) / len(errs):.2f} deg, max {max(errs):.2f} deg)"
    print(summary)
    if result.failed:
        print(f"{len(result.failed)} file(s) failed (also listed in {Path(args.out) / 'import_errors.json'}):",
              file=sys.stderr)
        for f, e in result.failed:
            print(f"  {f}: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_data_synth(args) -> int:
    from .data.synth import synthesize

    entries = synthesize(args.out, args.clips, seed=args.seed, fps=args.fps,
                         actions=args.actions.split(",") if args.actions else None, progress=not args.quiet)
    print(f"wrote {len(entries)} synthetic clip(s) into {args.out}")
    return 0


def cmd_data_info(args) -> int:
    from .data.dataset_dir import DatasetIndex

    index = DatasetIndex.load(args.dataset)
    rows = {}
    for e in index.entries():
        r = rows.setdefault(e["split"], [0, 0])
        r[0] += 1
        r[1] += e["frames"]
    info = {"dataset": str(args.dataset), "fps": index.fps, "clips": len(index.clips),
            "splits": {k: {"clips": v[0], "frames": v[1], "minutes": round(v[1] / index.fps / 60, 2)} for k, v in sorted(rows.items())}}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"{args.dataset}: {info['clips']} clips at {index.fps:g} fps")
        for k, v in info["splits"].items():
            print(f"  {k:5s}: {v['clips']:5d} clips, {v['frames']:7d} frames, {v['minutes']:.1f} min")
        for e in list(index.entries())[:3]:
            print(f"  e.g. {e['id']}: {e['texts'][0]!r}")
    return 0


def cmd_data_presets(args) -> int:
    from .io.retarget import presets

    for name, m in presets().items():
        print(f"{name:16s} {m.description}")
    return 0


# --- export-run, info ------------------------------------------------------------------------------------------

def add_export_run(p: argparse.ArgumentParser) -> None:
    p.description = ("Write RUN's config.json and weights to OUT, optionally as float16 (half the size; loads back as "
                     "float32). Checkpoints, optimizer state and logs are left behind.")
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory written by `motionclip train`")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--float16", action="store_true", help="store the weights as float16")
    p.set_defaults(func=cmd_export_run)


def cmd_export_run(args) -> int:
    from .run import WEIGHTS, export_run

    out = export_run(args.run, args.out, half=args.float16)
    size = (out / WEIGHTS).stat().st_size / 2**20
    print(f"exported {args.run} -> {out} ({size:.1f} MB of weights{', float16' if args.float16 else ''})")
    return 0


def add_info(p: argparse.ArgumentParser) -> None:
    p.description = "Print the version, the torch device, and which rest skeleton is in use."
    p.add_argument("--smpl-model", type=Path)
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    import torch

    from .skeleton import SMPL_MODEL_ENV, load_skeleton

    sk = load_skeleton(args.smpl_model)
    print(f"motionclip {__version__}")
    print(f"torch {torch.__version__}, device: {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"skeleton: {sk.name} ({sk.source}); set --smpl-model or ${SMPL_MODEL_ENV} to use your SMPL files")
    return 0
