"""`motionclip generate`, `recognize`, `interpolate`, `edit` and `demo`: a trained model on the command line.

Each command opens its model once with `open_model(args)`: the model loaded here (MotionModel), or,
with --server URL, a running `motionclip serve` (RemoteModel); both answer the same calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .argtypes import positive
from .errors import MotionClipError
from .netconf import DEFAULT_PORT, TOKEN_ENV


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--server", metavar="URL", help="ask a running `motionclip serve` at URL (e.g. "
                   f"http://127.0.0.1:{DEFAULT_PORT}) instead of loading the model here")
    p.add_argument("--token", help=f"the server's token, with --server (default: ${TOKEN_ENV})")
    add_text_encoder_option(p)


def add_text_encoder_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-encoder", metavar="SPEC",
                   help="load the run's text encoder from this spec instead of the one its config.json names (e.g. "
                        "moclip:RUN for a MoCLIP student, when that run's folder moved); it must be the encoder the "
                        "run was trained with, by content")


def local_encoder(args, device):
    """The text encoder given with --text-encoder (None: the run's own)."""
    spec = getattr(args, "text_encoder", None)
    if not spec:
        return None
    from .encoders import load_encoder

    return load_encoder(spec, device=device, text_only=True)


def add_length_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--frames", type=int, help="length in frames")
    g.add_argument("--seconds", type=float, help="length in seconds (default 4)")
    p.add_argument("--fps", type=float, help="frame rate of the output (default: the model's, 30)")


def open_model(args):
    """The model a command asked for: a RemoteModel with --server URL, else a MotionModel loaded here."""
    if getattr(args, "server", None):
        if getattr(args, "text_encoder", None):
            raise MotionClipError("--text-encoder loads a model here; with --server the server's own encoder is used "
                                  "(start it with `motionclip serve --text-encoder SPEC`)")
        from .remote import RemoteModel

        return RemoteModel(args.server, token=args.token)
    from .inference import MotionModel, pick_device

    device = pick_device(args.device)
    return MotionModel(args.checkpoint, device=device, encoder=local_encoder(args, device))


def _motion_or_prompt(text: str):
    """A motion file when the argument names an existing file, else a prompt."""
    from .io import load_motion

    return load_motion(text) if Path(text).is_file() else text


def _write(motion, path: Path) -> None:
    from .io import save_motion

    save_motion(motion, path)
    print(f"wrote {path}: {motion.num_frames} frames at {motion.fps:g} fps")


def add_generate(p: argparse.ArgumentParser) -> None:
    p.description = ("Generate a motion from a text prompt and write it by extension: .bvh, .npz (AMASS), .json, "
                     ".motion, .npy (HumanML3D joints).")
    p.add_argument("prompt")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    add_length_options(p)
    p.add_argument("--seed", type=int, help="variation seed: the same seed gives the same motion")
    add_model_options(p)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    m = open_model(args).generate(args.prompt, frames=args.frames, seconds=args.seconds, fps=args.fps, seed=args.seed)
    _write(m, args.out)
    return 0


def add_recognize(p: argparse.ArgumentParser) -> None:
    p.description = "Rank text labels by how well they match a motion clip in the shared latent space."
    p.add_argument("motion", type=Path, metavar="MOTION_FILE")
    p.add_argument("--labels", required=True, help='comma-separated labels, e.g. "walk,run,jump"')
    p.add_argument("--top", type=positive(int), default=10, help="show the best K (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_options(p)
    p.set_defaults(func=cmd_recognize)


def cmd_recognize(args) -> int:
    from .io import load_motion

    labels = [l.strip() for l in args.labels.split(",") if l.strip()]
    motion = load_motion(args.motion)
    ranked = open_model(args).recognize(motion, labels)[: args.top]
    if args.json:
        print(json.dumps([{"label": l, "score": round(s, 6)} for l, s in ranked]))
    else:
        for l, s in ranked:
            print(f"{s:7.4f}  {l}")
    return 0


def add_interpolate(p: argparse.ArgumentParser) -> None:
    p.description = ("Blend two prompts or two motion files (each argument is a file if it exists, else a prompt) "
                     "through their latents; several --alpha values write several files.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument("--alpha", help="blend factor(s) in [0, 1], comma-separated (default 0.5)")
    add_length_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args) -> int:
    a, b = _motion_or_prompt(args.a), _motion_or_prompt(args.b)
    alphas = [float(x) for x in args.alpha.split(",")] if args.alpha else [0.5]
    motions = open_model(args).interpolate(a, b, alphas, frames=args.frames, seconds=args.seconds, fps=args.fps)
    for alpha, m in zip(alphas, motions):
        out = args.out if len(motions) == 1 else args.out.with_name(f"{args.out.stem}_{alpha:g}{args.out.suffix}")
        _write(m, out)
    return 0


def add_edit(p: argparse.ArgumentParser) -> None:
    p.description = ('Move a motion along a text direction in the latent space, e.g. --from "walk" '
                     '--to "walk happily".')
    p.add_argument("motion", type=Path, metavar="MOTION_FILE")
    p.add_argument("--from", dest="source", required=True, metavar="TEXT")
    p.add_argument("--to", dest="target", required=True, metavar="TEXT")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    add_model_options(p)
    p.set_defaults(func=cmd_edit)


def cmd_edit(args) -> int:
    from .io import load_motion

    motion = load_motion(args.motion)
    _write(open_model(args).edit(motion, args.source, args.target, strength=args.strength), args.out)
    return 0


DEMO_PROMPTS = ("a person walks forward", "a person bows politely", "someone waves goodbye with the right hand")
DEMO_LABELS = ("a person walks", "a person runs", "a person jumps forward", "a person bows", "a person waves",
               "a person kicks", "a person punches", "a person dances", "a person climbs", "a person turns around")


def add_demo(p: argparse.ArgumentParser) -> None:
    p.description = ("Import the bundled CMU sample (a foreign BVH skeleton) into a dataset, retargeted to SMPL, and "
                     "write it as sample_smpl.bvh, sample_smpl.npz and sample_humanml3d.npy; generate three motions "
                     "from text with the built-in model (generated_N.bvh); and name the sample's action with the "
                     "same model.")
    p.add_argument("--out", type=Path, default=Path("demo"), metavar="DIR", help="output folder (default ./demo)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """The main job on the built-in default: import the bundled sample clip, write it as SMPL files,
    generate motions from text with the built-in model, and name the sample's action."""
    from importlib import resources

    from .data.dataset_dir import DatasetIndex
    from .data.importer import import_files
    from .inference import MotionModel
    from .io import save_motion

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
