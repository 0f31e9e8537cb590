"""``motionclip blender-batch``: render or export a list of prompts with a real Blender, headless.

Finds Blender (``--blender``, then ``$MOTIONCLIP_BLENDER``, then ``blender`` on PATH; a Python with
the bpy module works too, see core/headless_blender.py) and runs the add-on's batch script in it
(``blender -b --python batch.py -- ...``). Paths are resolved against the current directory here,
so relative ones mean what the caller meant. With ``--checkpoint RUN`` (or ``--serve`` for the
built-in model) it starts a local server for the batch's duration; otherwise it uses the one at
``--server``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import headless_blender
from .errors import MotionClipError
from .headless_blender import BLENDER_ENV, Blender

# The add-on's batch script in a source checkout (an editable install keeps it beside core/).
BATCH_SCRIPT = Path(__file__).resolve().parents[1] / "blender_addon" / "batch.py"


class BlenderBatchError(MotionClipError):
    pass


def find_blender(given: str | None) -> Blender:
    return headless_blender.find_blender(given, bpy_env=False, error=BlenderBatchError)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str | None, token: str, timeout: float = 300.0) -> tuple[subprocess.Popen, str]:
    """``motionclip serve`` on a free loopback port, once /health answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "motionclip.core.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    if token:
        cmd += ["--token", token]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BlenderBatchError(f"the server did not start: {proc.stderr.read().strip()[-800:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2.0):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise BlenderBatchError(f"the server did not answer on {url} within {timeout:g} s")


def batch_command(args: argparse.Namespace, blender: Blender, script: Path, url: str) -> list[str]:
    """The Blender command line for the batch, every path absolute."""
    cmd = blender.command(script) + [
        "--prompts", str(args.prompts.expanduser().absolute()), "--out", str(args.out.expanduser().absolute()),
        "--format", args.format, "--server", url, "--engine", args.engine, "--resolution", args.resolution,
        "--seed", str(args.seed), "--samples", str(args.samples)]
    if args.scene is not None:
        cmd += ["--scene", str(args.scene.expanduser().absolute())]
    for flag in ("seconds", "frames", "fps", "token"):
        value = getattr(args, flag)
        if value not in (None, ""):
            cmd += [f"--{flag}", str(value)]
    if args.no_body:
        cmd.append("--no-body")
    return cmd


def cmd_blender_batch(args: argparse.Namespace) -> int:
    """Exit code 0: all written; 1: some prompts failed; 2: nothing could run (the reason printed)."""
    try:
        return run_batch(args)
    except BlenderBatchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


def run_batch(args: argparse.Namespace) -> int:
    blender = find_blender(args.blender)
    script = Path(args.script).expanduser() if args.script else BATCH_SCRIPT
    if not script.is_file():
        raise BlenderBatchError(f"{script}: the add-on's batch script is missing; pass --script with the path of "
                                "batch.py inside the installed add-on folder")
    if not args.prompts.is_file():
        raise BlenderBatchError(f"{args.prompts}: no such prompt file")
    if args.scene is not None and not args.scene.is_file():
        raise BlenderBatchError(f"{args.scene}: no such .blend file")
    server = None
    url = args.server
    if args.checkpoint or args.serve:
        server, url = start_server(args.checkpoint, args.token)
    try:
        cmd = batch_command(args, blender, script.absolute(), url)
        print("running:", " ".join(cmd), flush=True)
        try:
            return subprocess.run(cmd).returncode
        except OSError as exc:
            raise BlenderBatchError(f"could not start Blender {blender.where}: {exc.strerror or exc}; give the "
                                    "blender program (or a Python with bpy) with --blender") from None
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def add_blender_batch(p: argparse.ArgumentParser) -> None:
    from .netconf import DEFAULT_URL

    p.description = ("Generate a motion for every prompt of a file and render it (mp4, png) or export it (blend, "
                     "fbx, bvh) with a real Blender in background mode. A .blend holds the scene the mp4 shows; "
                     "FBX keys start at time 0 (Blender's FBX import puts them on frames 1..N). Exit code: 0 all "
                     "written, 1 some prompts failed (the others are written; see OUT/batch_report.json), 2 nothing "
                     "could run.")
    p.add_argument("--prompts", type=Path, required=True, help="text file, one prompt a line (or a JSON list)")
    p.add_argument("--out", type=Path, required=True, help="output folder (relative: to the current directory)")
    p.add_argument("--format", choices=("mp4", "png", "blend", "fbx", "bvh"), default="mp4")
    p.add_argument("--scene", type=Path, default=None, help="a .blend to start from (its camera and lights are kept)")
    p.add_argument("--blender", default=None, help=f"Blender executable, or a Python with the bpy module "
                                                    f"(default ${BLENDER_ENV}, then `blender` on PATH)")
    p.add_argument("--script", default=None, help="the add-on's batch.py (default: the one in this checkout)")
    p.add_argument("--server", default=DEFAULT_URL, help="backend URL (when not starting one)")
    p.add_argument("--checkpoint", default=None, help="start a server for this run directory for the batch")
    p.add_argument("--serve", action="store_true", help="start a server with the built-in model for the batch")
    p.add_argument("--token", default="", help="the server's token")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None, help="length of each motion (default 4)")
    length.add_argument("--frames", type=int, default=None)
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the scene's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=("workbench", "eevee", "cycles"), default="workbench")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--resolution", default="640x360", help="WIDTHxHEIGHT")
    p.add_argument("--no-body", action="store_true", help="no stand-in body mesh")
    p.set_defaults(func=cmd_blender_batch)
