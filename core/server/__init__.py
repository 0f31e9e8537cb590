"""The local backend server: a trained MotionCLIP behind JSON over HTTP, for the Blender add-on.

In parts: options.py (options, the log, refusals), worker.py (the batching model worker),
guard.py (Host, token, size, content type, reading the body in time; slow connections),
convert.py (JSON and motions in and out, names not paths), app.py (routes, schema, error
answers), main.py (socket, exposure check, uvicorn, signals).
"""

from __future__ import annotations

from ..netconf import LOOPBACK_HOSTS
from .app import create_app
from .guard import GuardMiddleware
from .main import bind_socket, check_exposure, is_loopback, serve
from .options import HTTPFailure, ServerError, ServerOptions
from .worker import ModelWorker

LOOPBACK_NAMES = set(LOOPBACK_HOSTS)

__all__ = ["GuardMiddleware", "HTTPFailure", "LOOPBACK_NAMES", "ModelWorker", "ServerError", "ServerOptions",
           "bind_socket", "check_exposure", "create_app", "is_loopback", "serve"]
