"""The `motionclip` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import MotionClipError


def _floats(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative ratios train,val,test like 0.8,0.1,0.1, got {text!r}")
    return parts  # type: ignore[return-value]


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    return parse


def _add_input_options(p: argparse.ArgumentParser) -> None:
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


def cmd_train_autoencoder(args) -> int:
    from motionclip.train.autoencoder import load_train_config, train_autoencoder

    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "encoder": args.encoder,
                 "seed": args.seed, "window": args.window, "min_window": args.min_window,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "checkpoint_every": args.checkpoint_every,
                 "num_workers": args.workers, "text_cache": False if args.no_text_cache else None,
                 "init": str(args.init) if args.init else None}
    if args.resume:
        from .run import require_section

        saved = require_section(args.out, "train")  # a resumed run keeps its settings
        cfg = load_train_config(None, {**saved, **{k: v for k, v in overrides.items() if v is not None}})
    else:
        cfg = load_train_config(args.config or "small", overrides)
    metrics = train_autoencoder(args.data, args.out, cfg, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        shown = {k: metrics[k] for k in ("epoch", "train_total", "val_total", "val_mpjpe_mm", "samples_per_s") if k in metrics}
        print(f"trained {args.out}: {json.dumps(shown)}")
    return 0


def _model(args):
    from .inference import MotionModel

    return MotionModel(args.checkpoint, device=args.device)


def _motion_or_prompt(text: str):
    """A motion file when the argument names an existing file, else a prompt."""
    from .io import load_motion

    return load_motion(text) if Path(text).is_file() else text


def _write(motion, path: Path) -> None:
    from .io import save_motion

    save_motion(motion, path)
    print(f"wrote {path}: {motion.num_frames} frames at {motion.fps:g} fps")


def cmd_generate(args) -> int:
    if args.server:
        from .server_cli import remote_generate
        m = remote_generate(args)
    else:
        m = _model(args).generate(args.prompt, frames=args.frames, seconds=args.seconds, fps=args.fps, seed=args.seed)
    _write(m, args.out)
    return 0


def cmd_recognize(args) -> int:
    from .io import load_motion

    labels = [l.strip() for l in args.labels.split(",") if l.strip()]
    motion = load_motion(args.motion)  # a bad file fails before the model loads
    if args.server:
        from .server_cli import remote_recognize
        ranked = remote_recognize(args, motion, labels)
    else:
        ranked = _model(args).recognize(motion, labels)[: args.top]
    if args.json:
        print(json.dumps([{"label": l, "score": round(s, 6)} for l, s in ranked]))
    else:
        for l, s in ranked:
            print(f"{s:7.4f}  {l}")
    return 0


def cmd_interpolate(args) -> int:
    a, b = _motion_or_prompt(args.a), _motion_or_prompt(args.b)
    alphas = [float(x) for x in args.alpha.split(",")] if args.alpha else [0.5]
    if args.server:
        from .server_cli import remote_interpolate
        motions = remote_interpolate(args, a, b, alphas)
    else:
        motions = _model(args).interpolate(a, b, alphas, frames=args.frames, seconds=args.seconds, fps=args.fps)
    for alpha, m in zip(alphas, motions):
        out = args.out if len(motions) == 1 else args.out.with_name(f"{args.out.stem}_{alpha:g}{args.out.suffix}")
        _write(m, out)
    return 0


def cmd_edit(args) -> int:
    from .io import load_motion

    if args.server:
        from .server_cli import remote_edit
        m = remote_edit(args, load_motion(args.motion))
    else:
        m = _model(args).edit(load_motion(args.motion), args.source, args.target, strength=args.strength)
    _write(m, args.out)
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--server", metavar="URL", help="ask a running `motionclip serve` at URL (e.g. "
                   "http://127.0.0.1:8765) instead of loading the model here")
    p.add_argument("--token", help="the server's token, with --server (default: $MOTIONCLIP_TOKEN)")


def _add_length_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--frames", type=int, help="length in frames")
    g.add_argument("--seconds", type=float, help="length in seconds (default 4)")
    p.add_argument("--fps", type=float, help="frame rate of the output (default: the model's, 30)")


def cmd_eval(args) -> int:
    if getattr(args, "evaluator", None):  # the standard text-to-motion metrics (train/t2m_eval.py)
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
    if getattr(args, "out", None):
        paths = write_report(result, args.out, stem="eval", markdown=text)
        if not args.json:
            print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(json.dumps(result, indent=1) if args.json else text)
    return 0


DEMO_PROMPTS = ("a person walks forward", "a person bows politely", "someone waves goodbye with the right hand")
DEMO_LABELS = ("a person walks", "a person runs", "a person jumps forward", "a person bows", "a person waves",
               "a person kicks", "a person punches", "a person dances", "a person climbs", "a person turns around")


def cmd_demo(args) -> int:
    """The main job on the built-in default: import the bundled sample clip, write it as SMPL files,
    generate motions from text with the built-in model, and name the sample's action."""
    from importlib import resources

    from .data.importer import import_files
    from .io import save_motion
    from .data.dataset_dir import DatasetIndex
    from .inference import MotionModel

    sample = Path(str(resources.files("motionclip.core") / "assets" / "samples" / "cmu_01_01.bvh"))
    out = Path(args.out)
    result = import_files([sample], out / "dataset", progress=None)
    if result.failed:
        raise MotionClipError(f"importing the bundled sample failed: {result.failed[0][1]}")
    entry = result.imported[0]
    motion = DatasetIndex.load(out / "dataset").load_clip(entry["id"])
    r = entry["retarget"]
    print(f"imported {sample.name} (CMU 01_01, {r['mapping']} skeleton) -> {out / 'dataset'}: {entry['frames']} frames "
          f"at 30 fps, texts {entry['texts'][:1]}, retarget error: limbs {r['limb_dir_err_deg']:.2f} deg, "
          f"torso {r['torso_dir_err_deg']:.1f} deg, facing {r['facing_err_deg']:.2f} deg")
    for name in ("sample_smpl.bvh", "sample_smpl.npz", "sample_humanml3d.npy"):
        save_motion(motion, out / name)
        print(f"wrote {out / name}")
    model = MotionModel(None, device=args.device)
    print(f"built-in model: {model.run_dir} (text encoder {model.encoder.name}, device {model.device})")
    for i, prompt in enumerate(DEMO_PROMPTS):
        path = out / f"generated_{i + 1}.bvh"
        m = model.generate(prompt, seconds=4.0, seed=0)
        save_motion(m, path)
        print(f"generated \"{prompt}\" -> {path} ({m.num_frames} frames at {m.fps:g} fps)")
    ranked = model.recognize(motion, list(DEMO_LABELS))[:3]
    print(f"the sample clip ({entry['texts'][0]!r}) is recognised as: "
          + ", ".join(f"{label!r} ({score:.2f})" for label, score in ranked))
    return 0


def cmd_export_run(args) -> int:
    from .run import WEIGHTS, export_run

    out = export_run(args.run, args.out, half=args.float16)
    size = (out / WEIGHTS).stat().st_size / 2**20
    print(f"exported {args.run} -> {out} ({size:.1f} MB of weights{', float16' if args.float16 else ''})")
    return 0


def cmd_info(args) -> int:
    import torch

    from .skeleton import SMPL_MODEL_ENV, load_skeleton

    sk = load_skeleton(args.smpl_model)
    print(f"motionclip {__version__}")
    print(f"torch {torch.__version__}, device: {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"skeleton: {sk.name} ({sk.source}); set --smpl-model or ${SMPL_MODEL_ENV} to use your SMPL files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="motionclip", description="Text to SMPL skeleton animation: data, training, "
                                 "generation and the Blender backend.")
    ap.add_argument("--version", action="version", version=f"motionclip {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("convert", help="convert a motion file to another format (by extension)",
                       description="Convert between motion formats by extension: read .bvh (any skeleton, retargeted "
                                   "to SMPL), .npz (AMASS), .txt/.json (DeepMimic, our JSON), .motion; write .bvh, "
                                   ".npz, .json, .motion, .npy (HumanML3D joints [T,22,3] at 20 fps).")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    _add_input_options(p)
    p.add_argument("--fps", type=_positive(float), help="resample to this frame rate")
    p.add_argument("--canonicalize", action="store_true", help="start at the origin facing +Z, feet on the floor")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("data", help="datasets: import mocap, synthesize motions, inspect",
                       description="Build and inspect the canonical SMPL dataset.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True

    q = dsub.add_parser("import", help="import motion files / folders into a dataset directory",
                        description="Import BVH, AMASS npz, DeepMimic clips, our JSON / .motion files (files or folders) "
                                    "into DIR: one .motion per clip + index.json with texts and splits. Imports every "
                                    "good file, lists each failure and exits 1 if any failed.")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    q.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_input_options(q)
    q.add_argument("--texts", type=Path, metavar="FILE", help="texts per clip: CSV (file,text) or JSON {file: [texts]}")
    q.add_argument("--fps", type=_positive(float), default=30.0, help="dataset frame rate (default 30)")
    q.add_argument("--splits", type=_floats, default=(0.8, 0.1, 0.1), metavar="TRAIN,VAL,TEST",
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
    q.add_argument("--clips", type=_positive(int), default=100)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fps", type=_positive(float), default=30.0)
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

    p = sub.add_parser("train", help="train models", description="Train the MotionCLIP auto-encoder (and, later, MoCLIP).")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL")
    tsub.required = True
    q = tsub.add_parser("autoencoder", help="train the MotionCLIP auto-encoder on a dataset directory",
                        description="Train the MotionCLIP auto-encoder on DIR (from `motionclip data import` / `synth`), "
                                    "aligned with a frozen text encoder. Writes RUN/config.json, RUN/model.safetensors, "
                                    "checkpoints, metrics.csv and TensorBoard logs. Several GPUs or nodes: launch with "
                                    "`torchrun --nproc_per_node N -m motionclip.core.cli train autoencoder ...`.")
    q.add_argument("--data", type=Path, required=True, metavar="DIR")
    q.add_argument("--out", type=Path, required=True, metavar="RUN")
    q.add_argument("--config", metavar="PRESET|FILE.json",
                   help="training preset (small, paper, paper-clip, builtin, builtin-clip) or a JSON file of TrainConfig "
                        "fields (default small)")
    q.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint, same settings")
    q.add_argument("--init", type=Path, metavar="RUN0",
                   help="start from the weights (and feature statistics) of another run with the same model, e.g. "
                        "the built-in model's folder, to train it further on your data; a fresh schedule and optimizer")
    q.add_argument("--epochs", type=_positive(int))
    q.add_argument("--batch-size", type=_positive(int), help="global batch size (split over processes)")
    q.add_argument("--lr", type=_positive(float))
    q.add_argument("--encoder", help="text encoder: minilm (default, offline), clip:ViT-B/32, clip:/path/to/weights.pt")
    q.add_argument("--seed", type=int)
    q.add_argument("--window", type=_positive(int), help="frames per training window (default 60)")
    q.add_argument("--min-window", type=int, help="with it, windows of random length in [min, window]")
    q.add_argument("--max-steps-per-epoch", type=int, help="cut epochs short (quick runs)")
    q.add_argument("--checkpoint-every", type=_positive(int), help="epochs between checkpoints (default 1)")
    q.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    q.add_argument("--no-text-cache", action="store_true", help="re-encode texts every batch (for benchmarks)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_train_autoencoder)

    p = sub.add_parser("generate", help="text to motion",
                       description="Generate a motion from a text prompt and write it by extension: .bvh, .npz "
                                   "(AMASS), .json, .motion, .npy (HumanML3D joints).")
    p.add_argument("prompt")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    _add_length_options(p)
    p.add_argument("--seed", type=int, help="variation seed: the same seed gives the same motion")
    _add_model_options(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("recognize", help="rank action labels for a motion clip (zero-shot)",
                       description="Rank text labels by how well they match a motion clip in the shared latent space.")
    p.add_argument("motion", type=Path, metavar="MOTION_FILE")
    p.add_argument("--labels", required=True, help='comma-separated labels, e.g. "walk,run,jump"')
    p.add_argument("--top", type=_positive(int), default=10, help="show the best K (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_model_options(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("interpolate", help="blend two prompts or two clips",
                       description="Blend two prompts or two motion files (each argument is a file if it exists, "
                                   "else a prompt) through their latents; several --alpha values write several files.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument("--alpha", help="blend factor(s) in [0, 1], comma-separated (default 0.5)")
    _add_length_options(p)
    _add_model_options(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("edit", help="edit a clip along a text direction",
                       description='Move a motion along a text direction in the latent space, e.g. --from "walk" '
                                   '--to "walk happily".')
    p.add_argument("motion", type=Path, metavar="MOTION_FILE")
    p.add_argument("--from", dest="source", required=True, metavar="TEXT")
    p.add_argument("--to", dest="target", required=True, metavar="TEXT")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    _add_model_options(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("eval", help="evaluate a trained model on a held-out split",
                       description="Reconstruction MPJPE (plain and pelvis-aligned), zero-shot recognition top-1/top-5 "
                                   "over the split's action labels, the share of generated motions recognised as their "
                                   "prompt's action, and liveliness: per action, generated / real mean speed of the "
                                   "ankles and wrists relative to the pelvis and of the root (plain prompts, --seeds "
                                   "seeds).")
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--source", help="only clips whose texts came from this source, e.g. bandai-namco")
    p.add_argument("--seeds", type=_positive(int), default=5, help="generated motions per action (default 5)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="the main job on the built-in defaults: import a sample, text to motion, recognition",
                       description="Import the bundled CMU sample (a foreign BVH skeleton) into a dataset, retargeted "
                                   "to SMPL, and write it as sample_smpl.bvh, sample_smpl.npz and sample_humanml3d.npy; "
                                   "generate three motions from text with the built-in model (generated_N.bvh); and "
                                   "name the sample's action with the same model.")
    p.add_argument("--out", type=Path, default=Path("demo"), metavar="DIR", help="output folder (default ./demo)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("export-run", help="copy a trained run's model for shipping (no checkpoints or logs)",
                       description="Write RUN's config.json and weights to OUT, optionally as float16 (half the size; "
                                   "loads back as float32). Checkpoints, optimizer state and logs are left behind.")
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory written by `motionclip train`")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--float16", action="store_true", help="store the weights as float16")
    p.set_defaults(func=cmd_export_run)

    p = sub.add_parser("info", help="version, device and skeleton in use",
                       description="Print the version, the torch device, and which rest skeleton is in use.")
    p.add_argument("--smpl-model", type=Path)
    p.set_defaults(func=cmd_info)

    # Subcommands that live beside their code: each module has register(subparsers).
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return ap


# One line per module; each module imports its heavy dependencies inside its commands only.
_COMMAND_MODULES: tuple[str, ...] = (
    "motionclip.train.moclip",
    "motionclip.train.evaluator",
    "motionclip.train.t2m_eval",
    "motionclip.core.server_cli",
    "motionclip.core.blender_batch",
    "motionclip.render.cli",
    "motionclip.render.gallery",
    "motionclip.core.smpl_convert",
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MotionClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"error: {exc.filename}: permission denied ({exc.strerror}); choose a path you can write", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
