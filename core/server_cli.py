"""`motionclip serve`: the local backend server on the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_serve(p: argparse.ArgumentParser) -> None:
    from .argtypes import describe, int_at_least, port, seconds
    from .netconf import ALLOW_REMOTE_FLAG, DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV

    describe(p, ("Hold a trained model in memory and answer JSON requests: GET /health, POST /generate, "
                 "/interpolate, /edit, /recognize; the schema is at /openapi.json. Listens on 127.0.0.1 "
                 "(this machine only) unless --host says otherwise. Stop it with Ctrl+C or SIGTERM."),
             ["motionclip serve --checkpoint runs/small",
              f"curl -s localhost:{DEFAULT_PORT}/health",
              "curl -s -H 'Content-Type: application/json' -d '{\"prompt\": \"a person waves\", \"frames\": 90}' "
              f"localhost:{DEFAULT_PORT}/generate",
              f"motionclip generate \"a person waves\" --out wave.json --server http://127.0.0.1:{DEFAULT_PORT}"])
    p.add_argument("--checkpoint", type=Path, metavar="RUN", help="a run directory (default: the built-in model)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it to the "
                        f"network, which needs a --token, or {ALLOW_REMOTE_FLAG})")
    p.add_argument("--port", type=port, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0: any free port, printed at start)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    from .cli_model import add_text_encoder_option

    add_text_encoder_option(p)
    p.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' on every request (default: ${TOKEN_ENV} "
                                   "when set, else no token)")
    p.add_argument(ALLOW_REMOTE_FLAG, action="store_true",
                   help="let a --host other than this machine serve without a token (only on a network where "
                        "every machine is trusted: anyone who reaches the port can use the server)")
    p.add_argument("--max-jobs", type=int_at_least(1), default=128,
                   help="requests in flight (queued or running) before the server answers 503 busy (default 128)")
    p.add_argument("--max-batch", type=int_at_least(1), default=32,
                   help="generation requests run together in one forward pass (default 32)")
    p.add_argument("--batch-window-ms", type=float, default=20.0,
                   help="how long a batch waits for requests on their way to join it (default 20 ms; a lone "
                        "request does not wait)")
    p.add_argument("--text-cache", type=int_at_least(1), default=1024,
                   help="text embeddings kept in memory, least recently used dropped first (default 1024)")
    p.add_argument("--workers", type=int_at_least(1),
                   help="model threads, each running one batch at a time (default: 2 on a CPU, 1 on a GPU)")
    p.add_argument("--threads", type=int_at_least(1),
                   help="torch threads per worker (default on a CPU: its cores divided among the workers; on 2 "
                        "cores one each, which also holds up best when other programs use the CPU)")
    p.add_argument("--read-timeout", type=seconds(3600), default=30.0, metavar="SECONDS",
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

        from .cli_model import local_encoder
        from .inference import MotionModel, pick_device

        device = pick_device(args.device)
        cuda = device.type == "cuda"
        options.workers = args.workers or (1 if cuda else 2)
        if args.threads or not cuda:
            torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // options.workers))
        model = MotionModel(args.checkpoint, device=device, text_cache_size=args.text_cache,
                            encoder=local_encoder(args, device))
    except BaseException:
        sock.close()
        raise
    stopped_by = serve(model, options, sock=sock, announce=lambda line: print(line, flush=True))
    print(f"motionclip server stopped{f' ({stopped_by})' if stopped_by else ''}", flush=True)
    return 0
