"""Starting and stopping a local backend (``motionclip serve``) from a Python: the environment
"Set Up Backend" made (envsetup.py), or one the user points to, into which "Install Backend"
can also pip-install the backend bundled in the add-on. No bpy here.

The add-on's zip carries the backend as a wheel in ``backend/`` (see build_addon.py); ``pip
install <wheel>[serve]`` installs it with what serving needs (torch among it, which is why it
goes into a separate Python rather than Blender's own).
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from . import envsetup

ADDON_DIR = Path(__file__).resolve().parent
BUNDLED_BACKEND = ADDON_DIR / "backend"
LOG_FILE = Path(tempfile.gettempdir()) / "motionclip-backend.log"  # the add-on moves it to its user folder

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


def source_spec() -> str:
    """What pip installs: the bundled wheel, or the checkout the add-on lives in."""
    try:
        return envsetup.bundle()["spec"]
    except envsetup.SetupError as exc:
        raise BackendProcessError(str(exc)) from None


def check_model(checkpoint: str) -> None:
    """A backend built without the model (build_addon.py --without-model) needs a checkpoint."""
    try:
        has_model = bool(envsetup.bundle().get("model"))
    except envsetup.SetupError:
        has_model = True  # a backend installed by the user: it knows what it has
    if not has_model and not checkpoint.strip():
        raise BackendProcessError("this add-on was built without the built-in model, so the backend needs a "
                                  "trained model: set Checkpoint in Preferences > Add-ons > motionclip to a run "
                                  "folder (made by `motionclip train autoencoder`), then start the backend again")


def local_address(url: str) -> tuple[str, int]:
    """(host, port) of a backend URL on this machine, where a local backend can be started."""
    parts = urllib.parse.urlsplit((url or "").strip())
    host = parts.hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BackendProcessError(f"Backend URL {url!r} is not on this machine, so no backend can be started "
                                  "for it here; set Backend URL to e.g. http://127.0.0.1:8765 in Preferences > "
                                  "Add-ons > motionclip, or start the server on that machine")
    try:
        port = parts.port or 8765
    except ValueError:
        raise BackendProcessError(f"Backend URL {url!r} has no valid port; use e.g. http://127.0.0.1:8765") from None
    return host, port


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something already listens on host:port (another backend, or another program on that port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_ready(client, seconds: float = 300.0):
    """Poll the started backend's /health until it answers (its Health), or say why it stopped."""
    deadline = time.monotonic() + seconds
    while True:
        if not running():
            from .client import BackendError
            raise BackendError(exit_message())
        try:
            return client.health(timeout=2.0)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def install(python: str) -> str:
    """pip-install the bundled backend with its serving extras into ``python``; returns pip's tail."""
    cmd = [resolve_python(python), "-m", "pip", "install", f"{source_spec()}[serve]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        said = [l for l in proc.stderr.splitlines() if l.startswith("ERROR")] or proc.stderr.strip().splitlines()[-3:]
        raise BackendProcessError(f"pip failed (exit {proc.returncode}): {' | '.join(said)}")
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
    log = open(LOG_FILE, "wb")  # this start's output only: exit_message() quotes its end
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
            "No module named motionclip, press Set Up Backend (or Install Backend for your own Python); "
            "otherwise fix Checkpoint or Backend URL in Preferences > Add-ons > motionclip")


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
