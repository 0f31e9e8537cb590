"""The `motionclip` command line: one registry of subcommands, each filled by the part that owns it.

A subcommand's module is imported only when that subcommand runs or its own --help is asked, so
`motionclip --help` imports none of them and `motionclip generate` imports only the model's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Iterable

from . import __version__
from .errors import MotionClipError

# name, help line, "module:function" that fills the subcommand's parser (its description, options,
# nested subcommands and set_defaults(func=...)). Parts own their commands: core (motion files, datasets,
# the model, the server), train (train *, eval), render (render, embed-frames, gallery), and the
# Blender add-on's batch runner. This list is the only place that names those modules.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("convert", "convert a motion file to another format (by extension)", "motionclip.core.cli_data:add_convert"),
    ("data", "datasets: import mocap, synthesize motions, inspect", "motionclip.core.cli_data:add_data"),
    ("train", "train models", "motionclip.train.cli:add_train"),
    ("generate", "text to motion", "motionclip.core.cli_model:add_generate"),
    ("recognize", "rank action labels for a motion clip (zero-shot)", "motionclip.core.cli_model:add_recognize"),
    ("interpolate", "blend two prompts or two clips", "motionclip.core.cli_model:add_interpolate"),
    ("edit", "edit a clip along a text direction", "motionclip.core.cli_model:add_edit"),
    ("eval", "evaluate a trained model on a held-out split", "motionclip.train.cli:add_eval"),
    ("demo", "the main job on the built-in defaults: import a sample, text to motion, recognition",
     "motionclip.core.cli_model:add_demo"),
    ("export-run", "copy a trained run's model for shipping (no checkpoints or logs)",
     "motionclip.core.cli_data:add_export_run"),
    ("info", "version, device and skeleton in use", "motionclip.core.cli_data:add_info"),
    ("convert-smpl", "convert an SMPL / SMPL-H / SMPL-X model file to a plain .npz (no pickle)",
     "motionclip.core.smpl_convert:add_convert_smpl"),
    ("serve", "serve a trained model over HTTP on this machine (for the Blender add-on)",
     "motionclip.core.server_cli:add_serve"),
    ("blender-batch", "render or export a list of prompts with Blender, headless",
     "motionclip.core.blender_batch:add_blender_batch"),
    ("render", "render a motion file to MP4, GIF, PNG frames or a contact sheet", "motionclip.render.cli:add_render"),
    ("embed-frames", "render frames of every clip of a dataset and cache their CLIP image embeddings",
     "motionclip.render.cli:add_embed_frames"),
    ("gallery", "contact sheets of a model's motions for 8 prompts, with Markdown and figures",
     "motionclip.render.gallery:add_gallery"),
)
COMMAND_NAMES = tuple(name for name, _, _ in COMMANDS)


def _filler(target: str) -> Callable[[argparse.ArgumentParser], None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def build_parser(fill: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; the subcommands in `fill` (default: all) get their options,
    the others stay a name and a help line (enough for `motionclip --help` and for choosing one)."""
    fill = set(COMMAND_NAMES if fill is None else fill)
    ap = argparse.ArgumentParser(prog="motionclip", description="Text to SMPL skeleton animation: data, training, "
                                 "generation and the Blender backend.")
    ap.add_argument("--version", action="version", version=f"motionclip {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_line, target in COMMANDS:
        p = sub.add_parser(name, help=help_line)
        if name in fill:
            _filler(target)(p)
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line, importing only the chosen subcommand's module."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = argv[0] if argv and argv[0] in COMMAND_NAMES else None
    return build_parser([chosen] if chosen else []).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (MotionClipError, OSError) as exc:
        print(f"error: {_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _error_line(exc: MotionClipError | OSError) -> str:
    """What `error: ...` says for a refusal or a file that cannot be used."""
    if isinstance(exc, MotionClipError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: no such file"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied ({exc.strerror}); choose a path you can write"
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
