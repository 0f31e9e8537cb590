"""Starting and stopping a local backend (``motionclip serve``) from a Python the user points to,
and installing the backend bundled in the add-on into that Python. No bpy here.

The add-on's zip carries the backend's source in ``backend/`` (see build_addon.py); ``pip
install backend[serve]`` installs it with what serving needs (torch among it, which is why it
goes into a separate Python rather than Blender's own).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
BUNDLED_BACKEND = ADDON_DIR / "backend"
LOG_FILE = Path(tempfile.gettempdir()) / "motionclip-backend.log"

_process: subprocess.Popen | None = None


class BackendProcessError(Exception):
    pass


def resolve_python(python: str) -> str:
    """The interpreter's path; a message that says what to set when it is missing."""
    python = os.path.expanduser((python or "").strip())
    if not python:
        raise BackendProcessError("no Backend Python is set: in Preferences > Add-ons > motionclip, set Backend "
                                  "Python to a Python that has the backend installed (e.g. /path/to/venv/bin/python; "
                                  "Install Backend puts it there), or start it yourself with `motionclip serve`")
    if not Path(python).is_file():
        raise BackendProcessError(f"Backend Python {python}: no such file; in Preferences > Add-ons > motionclip, "
                                  "point Backend Python to a Python interpreter (e.g. /path/to/venv/bin/python)")
    return python


def source_dir() -> Path:
    """The backend's source: the bundled copy, or the checkout the add-on lives in."""
    for d in (BUNDLED_BACKEND, ADDON_DIR.parent):
        if (d / "pyproject.toml").exists() and (d / "core" / "protocol.py").exists():
            return d
    raise BackendProcessError(f"no bundled backend in {BUNDLED_BACKEND}; install the add-on from the zip "
                              "build_addon.py makes, or install motionclip yourself")


def has_backend(python: str) -> bool:
    proc = subprocess.run([resolve_python(python), "-c", "import motionclip.core.cli"], capture_output=True,
                          timeout=120)
    return proc.returncode == 0


def install(python: str) -> str:
    """pip-install the bundled backend with its serving extras into ``python``; returns pip's tail."""
    cmd = [resolve_python(python), "-m", "pip", "install", f"{source_dir()}[serve]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise BackendProcessError(f"pip failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "installed"


def running() -> bool:
    return _process is not None and _process.poll() is None


def start(python: str, host: str, port: int, checkpoint: str = "", token: str = "") -> subprocess.Popen:
    """Launch ``python -m motionclip.core.cli serve`` (output in LOG_FILE); stopped when Blender quits."""
    global _process
    if running():
        raise BackendProcessError(f"the backend is already running (pid {_process.pid}); press Stop Backend "
                                  "first to restart it")
    cmd = [resolve_python(python), "-m", "motionclip.core.cli", "serve", "--host", host, "--port", str(port)]
    if checkpoint.strip():
        cmd += ["--checkpoint", os.path.expanduser(checkpoint.strip())]
    env = dict(os.environ)
    if token.strip():
        cmd += ["--token", token.strip()]
    for var in ("PYTHONPATH", "PYTHONHOME"):  # Blender's own Python must not leak into the backend's
        env.pop(var, None)
    log = open(LOG_FILE, "ab")
    kwargs = {"start_new_session": True} if sys.platform != "win32" else {}
    _process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, **kwargs)
    log.close()
    return _process


def exit_message() -> str:
    """Why a started backend is not running (its exit code and the end of its log)."""
    code = _process.poll() if _process is not None else None
    try:
        tail = LOG_FILE.read_text(errors="replace").strip().splitlines()[-3:]
    except OSError:
        tail = []
    return (f"the backend exited with code {code}: " + " | ".join(tail) + f" (log: {LOG_FILE}). If it says "
            "No module named motionclip, press Install Backend; otherwise fix Checkpoint or Port in "
            "Preferences > Add-ons > motionclip")


def stop(timeout: float = 5.0) -> bool:
    global _process
    proc, _process = _process, None
    if proc is None or proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    return True


atexit.register(stop)
