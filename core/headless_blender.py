"""Which Blender runs the project's headless scripts, and the command line that runs one.

Both headless pipelines use it: ``motionclip render --renderer blender`` (render/blender_script.py)
and ``motionclip blender-batch`` (blender_addon/batch.py). A "Blender" here is either a Blender
executable, run as ``blender -b [scene.blend] --python SCRIPT -- ARGS``, or a Python that has the
bpy module (``pip install bpy``), run as ``python SCRIPT -- ARGS``.

Search order: the given path (``--blender``), then ``$MOTIONCLIP_BLENDER``, then (where asked)
the project's ``.venv-blender/bin/python``, then ``blender`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from .errors import MotionClipError

BLENDER_ENV = "MOTIONCLIP_BLENDER"
REPO = Path(__file__).resolve().parents[1]  # a source checkout (an editable install keeps core/ here)
INSTALL_HINT = ("install Blender (apt-get install blender, or blender.org) and put `blender` on PATH, or give "
                f"--blender PATH / ${BLENDER_ENV}: a Blender executable, or a Python that has the bpy module "
                "(python -m venv .venv-blender && .venv-blender/bin/pip install bpy==5.0.1)")


class BlenderNotFound(MotionClipError):
    """No usable Blender: the message says where it looked and how to give one."""


class Blender(NamedTuple):
    path: str
    where: str  # the path and where it came from, for messages
    is_python: bool  # a Python with the bpy module rather than a Blender executable

    def command(self, script: str | os.PathLike, *, factory_startup: bool = False) -> list[str]:
        """The command prefix that runs ``script`` in this Blender; append the script's arguments."""
        if self.is_python:
            return [self.path, str(script), "--"]
        return [self.path, "-b", *(["--factory-startup"] if factory_startup else []), "--python-exit-code", "3",
                "--python", str(script), "--"]


def is_python(path: str | os.PathLike) -> bool:
    return Path(path).name.lower().startswith("python")


def find_blender(given: str | os.PathLike | None = None, *, bpy_env: bool = True,
                 error: type[MotionClipError] = BlenderNotFound) -> Blender:
    """The Blender to use (see the module's search order); ``error`` is raised, with the reason,
    when the given one does not exist or none is found. ``bpy_env``: look for the project's
    .venv-blender before PATH."""
    where = "--blender"
    if given is None and os.environ.get(BLENDER_ENV):
        given, where = os.environ[BLENDER_ENV], f"${BLENDER_ENV}"
    if given is not None:
        path = Path(given).expanduser()
        resolved = str(path) if path.is_file() else shutil.which(str(path))
        if not resolved:
            raise error(f"Blender not found at {given} (from {where}): give a Blender executable or a Python with "
                        "the bpy module")
        resolved = os.path.abspath(resolved)
        return Blender(resolved, f"{resolved} (from {where})", is_python(resolved))
    if bpy_env:
        for root in (REPO, Path(sys.prefix).parent, Path.cwd()):
            py = root / ".venv-blender" / "bin" / "python"
            if py.exists():
                return Blender(str(py), f"{py} (the project's bpy environment)", True)
    on_path = shutil.which("blender")
    if on_path:
        return Blender(on_path, f"{on_path} (on PATH)", False)
    raise error(f"no Blender found: {INSTALL_HINT}")
