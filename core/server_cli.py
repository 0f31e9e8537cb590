"""`motionclip serve`: the local backend server on the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535 (0: any free port), got {v}")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, got {v:g}")
    return v


def register(sub) -> None:
    from .netconf import ALLOW_REMOTE_FLAG, DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV

    p = sub.add_parser(
        "serve", help="serve a trained model over HTTP on this machine (for the Blender add-on)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hold a trained model in memory and answer JSON requests: GET /health, POST /generate, "
                    "/interpolate, /edit, /recognize; the schema is at /openapi.json. Listens on 127.0.0.1 "
                    "(this machine only) unless --host says otherwise. Stop it with Ctrl+C or SIGTERM.",
        epilog="examples:\n"
               "  motionclip serve --checkpoint runs/small\n"
               "  curl -s localhost:8765/health\n"
               "  curl -s -H 'Content-Type: application/json' -d '{\"prompt\": \"a person waves\", \"frames\": 90}' "
               "localhost:8765/generate\n"
               "  motionclip generate \"a person waves\" --out wave.json --server http://127.0.0.1:8765")
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it to the "
                        f"network, which needs a --token, or {ALLOW_REMOTE_FLAG})")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0: any free port, printed at start)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' on every request (default: ${TOKEN_ENV} "
                                   "when set, else no token)")
    p.add_argument(ALLOW_REMOTE_FLAG, action="store_true",
                   help="let a --host other than this machine serve without a token (only on a network where "
                        "every machine is trusted: anyone who reaches the port can use the server)")
    p.add_argument("--max-jobs", type=_count, default=128,
                   help="requests in flight (queued or running) before the server answers 503 busy (default 128)")
    p.add_argument("--max-batch", type=_count, default=32,
                   help="generation requests run together in one forward pass (default 32)")
    p.add_argument("--batch-window-ms", type=float, default=20.0,
                   help="how long a batch waits for requests on their way to join it (default 20 ms; a lone "
                        "request does not wait)")
    p.add_argument("--text-cache", type=_count, default=1024,
                   help="text embeddings kept in memory, least recently used dropped first (default 1024)")
    p.add_argument("--workers", type=_count,
                   help="model threads, each running one batch at a time (default: 2 on a CPU, 1 on a GPU)")
    p.add_argument("--threads", type=_count,
                   help="torch threads per worker (default on a CPU: its cores divided among the workers; on 2 "
                        "cores one each, which also holds up best when other programs use the CPU)")
    p.add_argument("--read-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                   help="how long a client may take to send a request's headers, and again its body, before the "
                        "connection is closed (a body: 408); also how long an idle connection stays open "
                        "(default 30)")
    p.add_argument("--access-log", action="store_true", help="print one line per request")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    import logging

    from .errors import MotionClipError
    from .netconf import TOKEN_ENV

    try:
        from .server import ServerError, ServerOptions, bind_socket, check_exposure, serve
    except ImportError as exc:
        raise MotionClipError(f"serving needs FastAPI and uvicorn ({exc}); install them with "
                              "pip install 'motionclip[serve]'") from None

    if not (0 <= args.batch_window_ms <= 1000):
        raise ServerError(f"--batch-window-ms must be between 0 and 1000, got {args.batch_window_ms}")
    token = args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)
    if token is not None and not token.strip():
        raise ServerError("--token is empty; give a token or leave the option out")
    if token is not None and (any(c.isspace() for c in token) or not token.isprintable()):
        raise ServerError("--token must be printable and without spaces (it travels in an HTTP header)")
    options = ServerOptions(host=args.host, port=args.port, token=token, max_jobs=args.max_jobs,
                            max_batch=args.max_batch, batch_window_ms=args.batch_window_ms,
                            access_log=args.access_log, read_timeout=args.read_timeout,
                            allow_remote_without_token=args.allow_remote_without_token)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("motionclip.server").setLevel(logging.INFO)
    warning = check_exposure(args.host, token, args.allow_remote_without_token)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    sock = bind_socket(args.host, args.port)  # fails fast, before the model loads, when the port is taken
    try:
        import torch

        from .inference import MotionModel, pick_device

        cuda = pick_device(args.device).type == "cuda"
        options.workers = args.workers or (1 if cuda else 2)
        if args.threads or not cuda:
            torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // options.workers))
        model = MotionModel(args.checkpoint, device=args.device, text_cache_size=args.text_cache)
    except BaseException:
        sock.close()
        raise
    stopped_by = serve(model, options, sock=sock, announce=lambda line: print(line, flush=True))
    print(f"motionclip server stopped{f' ({stopped_by})' if stopped_by else ''}", flush=True)
    return 0


# ----------------------------------------------------------------- the CLI as a client (--server URL)

def _client(args):
    from .client import ServerClient

    return ServerClient(args.server, token=args.token)


def _to_motion(data):
    from .io.json_motion import data_to_motion

    return data_to_motion(data, "the server's answer")


def _to_data(motion, field: str):
    """A motion file's Motion as the wire type, checked against the protocol's limits before sending."""
    from .client import ClientError
    from .io.json_motion import motion_to_data
    from .protocol import MotionData, ProtocolError

    try:
        return MotionData.from_json(motion_to_data(motion).to_json(), field)
    except ProtocolError as exc:
        raise ClientError(f"{exc.field}: {exc.message}") from None


def remote_generate(args):
    from .client import check
    from .protocol import GenerateRequest

    req = check(GenerateRequest, dict(prompt=args.prompt, frames=args.frames, seconds=args.seconds, fps=args.fps,
                                      seed=args.seed))
    return _to_motion(_client(args).generate(req))


def remote_interpolate(args, a, b, alphas: list[float]):
    from .client import check
    from .protocol import InterpolateRequest

    ends = {key: x if isinstance(x, str) else _to_data(x, key).to_json() for key, x in (("a", a), ("b", b))}
    req = check(InterpolateRequest, dict(**ends, alphas=alphas, frames=args.frames, seconds=args.seconds,
                                         fps=args.fps))
    return [_to_motion(m) for m in _client(args).interpolate(req)]


def remote_edit(args, motion):
    from .protocol import EditRequest

    from .client import check
    req = check(EditRequest, dict(motion=_to_data(motion, "motion").to_json(), source=args.source,
                                  target=args.target, strength=args.strength))
    return _to_motion(_client(args).edit(req))


def remote_recognize(args, motion, labels: list[str]) -> list[tuple[str, float]]:
    from .client import check
    from .protocol import RecognizeRequest

    req = check(RecognizeRequest, dict(motion=_to_data(motion, "motion").to_json(), labels=labels, top=args.top))
    return _client(args).recognize(req).ranked
