"""Starting and stopping: the listening socket, who may be exposed to the network, uvicorn.

Safety. Binds 127.0.0.1 unless told otherwise. Beyond loopback it needs a token, or an explicit
``allow_remote_without_token`` (``--allow-remote-without-token``) for a trusted network. Slow
clients: a connection has ``read_timeout`` seconds for a request's headers (see guard.py) and as
long again for its body; an idle kept-alive connection is closed after the same time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from typing import Callable

from ..netconf import ALLOW_REMOTE_FLAG, TOKEN_ENV
from .app import create_app
from .guard import protocol_class
from .options import ServerError, ServerOptions
from .worker import ModelWorker


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except (socket.gaierror, ValueError):
            return False


def check_exposure(host: str, token: str | None, allow_remote_without_token: bool = False) -> str | None:
    """ServerError when `host` reaches beyond this machine with no token and no explicit permission;
    otherwise the warning to print for a non-loopback address (None on loopback)."""
    if is_loopback(host):
        return None
    if not token and not allow_remote_without_token:
        raise ServerError(f"refusing to listen on {host} without a token: anyone on the network could use this "
                          f"server. Set --token (or ${TOKEN_ENV}), listen on 127.0.0.1, or pass {ALLOW_REMOTE_FLAG} "
                          "if every machine that can reach it is trusted")
    return (f"warning: listening on {host}: other machines on the network can reach this server"
            + ("" if token else f"; with {ALLOW_REMOTE_FLAG}, anyone who can reach it can use it"))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: any free port); ServerError with the fix when it fails."""
    if not 0 <= port <= 65535:
        raise ServerError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServerError(f"cannot resolve --host {host!r} ({exc.strerror}); use an address such as 127.0.0.1") \
            from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ServerError(f"port {port} on {host} is already in use (another motionclip serve?); stop that "
                              f"server or choose another port with --port") from None
        raise ServerError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --host or --port") \
            from None
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server; SIGTERM and SIGINT stop it gracefully and the process then exits normally
        (uvicorn itself re-raises the signal after shutting down)."""

        on_started: Callable[[], None] | None = None
        stopped_by: str | None = None

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig, frame) -> None:
            self.stopped_by = signal.Signals(sig).name
            super().handle_exit(sig, frame)

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.on_started is not None:
                self.on_started()

    return Server


def serve(model, options: ServerOptions, sock: socket.socket | None = None,
          announce: Callable[[str], None] = print) -> str | None:
    """Serve `model` until SIGTERM / SIGINT; returns the name of the signal that stopped it."""
    import uvicorn

    check_exposure(options.host, options.token, options.allow_remote_without_token)
    if not options.read_timeout > 0:
        raise ServerError(f"the read timeout must be more than 0 seconds, got {options.read_timeout}")
    sock = sock or bind_socket(options.host, options.port)
    try:  # a model that cannot generate fails here, with its message, before anything listens
        model.generate_batch([dict(prompt="a person walks forward", frames=120)])
    except Exception as exc:
        sock.close()
        raise ServerError(f"the model in {model.run_dir} failed its first generation ({type(exc).__name__}: {exc})") \
            from exc
    loopback = is_loopback(options.host)
    worker = ModelWorker(model, max_jobs=options.max_jobs, max_batch=options.max_batch,
                         batch_window_ms=options.batch_window_ms, workers=options.workers)
    app = create_app(worker, options, loopback=loopback, warmup=True)
    config = uvicorn.Config(app, log_level="warning", access_log=options.access_log, lifespan="on",
                            timeout_graceful_shutdown=30, server_header=False,
                            timeout_keep_alive=options.read_timeout, http=protocol_class(options.read_timeout),
                            h11_max_incomplete_event_size=64 * 1024)
    server = _server_class()(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server.on_started = lambda: announce(
        f"motionclip server: {model.run_dir} (text encoder {model.encoder.name}, device {model.device}) "
        f"listening on http://{shown}:{port}" + (" with a token" if options.token else "") + " (Ctrl+C to stop)")
    server.run(sockets=[sock])
    return server.stopped_by
