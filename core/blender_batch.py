"""``motionclip blender-batch``: render or export a list of prompts with a real Blender, headless.

Finds Blender (``--blender``, then ``$MOTIONCLIP_BLENDER``, then ``blender`` on PATH) and runs the
add-on's batch script in it (``blender -b [scene.blend] --python batch.py -- ...``). With
``--checkpoint RUN`` (or ``--serve`` for the built-in model) it starts a local server for the
batch's duration; otherwise it uses the one at ``--server``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .errors import MotionClipError

BLENDER_ENV = "MOTIONCLIP_BLENDER"
# The add-on's batch script in a source checkout (an editable install keeps it beside core/).
BATCH_SCRIPT = Path(__file__).resolve().parents[1] / "blender_addon" / "batch.py"


class BlenderBatchError(MotionClipError):
    pass


def find_blender(given: str | None) -> str:
    for candidate, where in ((given, "--blender"), (os.environ.get(BLENDER_ENV), f"${BLENDER_ENV}")):
        if candidate:
            path = shutil.which(os.path.expanduser(candidate))
            if path is None:
                raise BlenderBatchError(f"{where} {candidate}: not an executable Blender; give the path of the "
                                        "blender program")
            return path
    path = shutil.which("blender")
    if path is None:
        raise BlenderBatchError(f"no Blender found: install it (e.g. `apt-get install blender`), put it on PATH, "
                                f"set ${BLENDER_ENV} or pass --blender PATH")
    return path


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


def cmd_blender_batch(args: argparse.Namespace) -> int:
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
        cmd = [blender, "-b"] + ([str(args.scene)] if args.scene else []) + [
            "--python-exit-code", "3", "--python", str(script), "--",
            "--prompts", str(args.prompts), "--out", str(args.out), "--format", args.format, "--server", url,
            "--engine", args.engine, "--resolution", args.resolution, "--seed", str(args.seed),
            "--samples", str(args.samples)]
        for flag in ("seconds", "frames", "fps", "token"):
            value = getattr(args, flag)
            if value not in (None, ""):
                cmd += [f"--{flag}", str(value)]
        if args.no_body:
            cmd.append("--no-body")
        print("running:", " ".join(cmd), flush=True)
        return subprocess.run(cmd).returncode
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def add_blender_batch(p: argparse.ArgumentParser) -> None:
    from .netconf import DEFAULT_PORT

    p.description = ("Generate a motion for every prompt of a file and render it (mp4, png) or export it (blend, "
                     "fbx, bvh) with a real Blender in background mode. Exit code: 0 all written, 1 some prompts "
                     "failed (the others are written; see OUT/batch_report.json), 2 nothing could run.")
    p.add_argument("--prompts", type=Path, required=True, help="text file, one prompt a line (or a JSON list)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=("mp4", "png", "blend", "fbx", "bvh"), default="mp4")
    p.add_argument("--scene", type=Path, default=None, help="a .blend to start from (its camera and lights are kept)")
    p.add_argument("--blender", default=None, help=f"Blender executable (default ${BLENDER_ENV}, then PATH)")
    p.add_argument("--script", default=None, help="the add-on's batch.py (default: the one in this checkout)")
    p.add_argument("--server", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="backend URL (when not starting one)")
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
