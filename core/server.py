"""The local backend server: a trained MotionCLIP behind JSON over HTTP, for the Blender add-on.

    GET  /health        model, text encoder, device, version, protocol, limits
    POST /generate      prompt -> motion
    POST /interpolate   two prompts or motions -> one motion per blend factor
    POST /edit          motion + text direction -> motion
    POST /recognize     motion + labels -> labels ranked
    GET  /openapi.json  the schema of all of the above

Bodies are the wire protocol's (core/protocol.py): requests are validated by its ``from_json``
and every refusal is a 4xx with ``{"error": {"field", "message"}}``, also for unknown paths,
wrong methods, oversized bodies and a missing token. A failure inside the model is a 500 with a
message, and the server goes on serving.

Speed. Every torch call runs on model threads (2 on a CPU, one torch thread each; 1 on a GPU),
so the event loop never blocks. Concurrent ``/generate`` requests are collected into batches
(a batch waits up to the batch window while other requests are about; a lone request does
not wait): one text-encoder call for all prompts (an LRU cache skips prompts seen lately), one
decoder call per group of similar lengths (different lengths are masked). A failing batch is
retried item by item, so only the bad item fails. Answers are serialised (orjson) on other
threads, overlapping the next batch's torch work.

Safety. Binds 127.0.0.1 unless told otherwise; on loopback it also refuses requests whose Host
header names another machine (a web page cannot reach it through DNS rebinding), and it refuses
the content types a browser form can send cross-site. Optional bearer token. Limits on prompt
length, frames, body size (checked before the body is read) and jobs in flight (503 when full).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

# At module level: FastAPI resolves the handlers' annotations in this module's namespace.
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import __version__
from .client import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV
from .errors import MotionClipError
from .protocol import (MAX_BODY_BYTES, PROTOCOL_VERSION, EditRequest, GenerateRequest, Health, InterpolateRequest,
                       MotionData, Motions, ProtocolError, Recognition, RecognizeRequest, json_schemas)

log = logging.getLogger("motionclip.server")

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class ServerError(MotionClipError):
    """The server cannot start (port in use, bad option)."""


@dataclass
class ServerOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_jobs: int = 128            # requests in flight (queued or running) before 503
    max_batch: int = 32            # generations per forward pass
    batch_window_ms: float = 20.0  # how long a batch waits for requests on their way (a lone one does not)
    max_body_bytes: int = MAX_BODY_BYTES
    access_log: bool = False
    workers: int = 1               # model threads (batches run side by side)


class HTTPFailure(Exception):
    """An answer other than 200: status, field, message (and headers)."""

    def __init__(self, status: int, field: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers or {}

    def body(self) -> dict[str, Any]:
        return ProtocolError(self.field, self.message).to_json()


# ----------------------------------------------------------------------------------------- the worker

@dataclass
class _Job:
    request: GenerateRequest
    future: asyncio.Future


class ModelWorker:
    """Owns a MotionModel; runs every torch call on one thread; batches generation requests."""

    def __init__(self, model, max_jobs: int = 128, max_batch: int = 32, batch_window_ms: float = 20.0,
                 workers: int = 1):
        self.model = model
        self.max_jobs = int(max_jobs)
        self.max_batch = int(max_batch)
        self.batch_window = float(batch_window_ms) / 1000.0
        self.workers = int(workers)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="motionclip-model")
        self.jobs = 0
        self.batches = 0
        self.batched_items = 0
        self.running_items = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # --- life cycle (inside the event loop) ---------------------------------------------------

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._batcher(), name="motionclip-batcher")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(HTTPFailure(503, "", "the server is shutting down; send the request again "
                                                               "once it is back"))
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.executor.shutdown(wait=True))

    # --- admission ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def slot(self):
        """One job in flight; 503 when max_jobs are."""
        if self._closing:
            raise HTTPFailure(503, "", "the server is shutting down", {"Retry-After": "5"})
        if self.jobs >= self.max_jobs:
            raise HTTPFailure(503, "", f"the server is busy: {self.jobs} requests in flight (the limit is "
                                       f"{self.max_jobs}); retry in a moment, or start it with a larger --max-jobs",
                              {"Retry-After": "1"})
        self.jobs += 1
        try:
            yield
        finally:
            self.jobs -= 1

    # --- work ---------------------------------------------------------------------------------

    async def run(self, fn: Callable, *args: Any) -> Any:
        """fn(*args) on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def generate(self, request: GenerateRequest):
        """One generation, batched with whatever else is waiting."""
        assert self._queue is not None, "worker not started"
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(request, future))
        return await future

    async def _batcher(self) -> None:
        """Collects a batch whenever a model thread is free, and hands it over."""
        queue = self._queue
        assert queue is not None
        free = asyncio.Semaphore(self.workers)
        running: set[asyncio.Task] = set()
        while True:
            await free.acquire()
            try:
                batch = await self._collect(queue)
            except BaseException:
                free.release()
                raise
            if not batch:
                free.release()
                continue
            self.batches += 1
            self.batched_items += len(batch)
            task = asyncio.create_task(self._run_batch(batch, free))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _collect(self, queue: asyncio.Queue) -> list[_Job]:
        """A batch: the first request, then whatever arrives within the batch window, but only while other
        requests are about (being read or answered, or running on another model thread, their clients
        about to send the next ones): a lone request does not wait."""
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + self.batch_window
        while len(batch) < self.max_batch:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            elsewhere = self.jobs - len(batch) - self.running_items
            wait = deadline - loop.time()
            if (elsewhere <= 0 and self.running_items == 0) or wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), wait))
            except asyncio.TimeoutError:
                break
        return [job for job in batch if not job.future.done()]  # a client that left is not served

    async def _run_batch(self, batch: list[_Job], free: asyncio.Semaphore) -> None:
        self.running_items += len(batch)
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self._generate_many,
                                                                       [job.request for job in batch])
        except BaseException as exc:  # the executor itself failed (shut down): fail the batch
            results = [HTTPFailure(503, "", "the server is shutting down")
                       if isinstance(exc, (asyncio.CancelledError, RuntimeError)) else exc] * len(batch)
        finally:
            self.running_items -= len(batch)
            free.release()
        for job, result in zip(batch, results):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    def _generate_many(self, requests: list[GenerateRequest]) -> list[Any]:
        """On the model thread: motions (or the exception of each failed item), in order."""
        kwargs = [dict(prompt=r.prompt, seed=r.seed, **r.length.as_kwargs()) for r in requests]
        try:
            if len(kwargs) > 1:
                self.model.text_embeddings([k["prompt"] for k in kwargs])  # one encoder call for the batch
            out: list[Any] = [None] * len(kwargs)
            for group in self._length_groups(kwargs):
                for i, m in zip(group, self.model.generate_batch([kwargs[i] for i in group])):
                    out[i] = m
            return out
        except Exception:
            if len(kwargs) == 1:
                return [_capture()]
        results = []
        for k in kwargs:  # the batch failed: each item alone, so only the bad ones fail
            try:
                results.append(self.model.generate_batch([k])[0])
            except Exception:
                results.append(_capture())
        return results

    def _length_groups(self, kwargs: list[dict]) -> list[list[int]]:
        """Indices grouped so that no item is padded to more than twice its model-rate length."""
        sizes = []
        for i, k in enumerate(kwargs):
            frames, fps = self.model.frames_for(k.get("frames"), k.get("seconds"), k.get("fps"))
            sizes.append((max(1.0, (frames - 1) / fps * self.model.fps + 1), i))
        sizes.sort()
        groups: list[list[int]] = []
        start = None
        for size, i in sizes:
            if start is None or size > 2 * start:
                groups.append([])
                start = size
            groups[-1].append(i)
        return groups


def _capture() -> BaseException:
    """The exception being handled, logged with its traceback (a model failure, not the client's fault)."""
    exc = sys.exc_info()[1]
    assert exc is not None
    if not isinstance(exc, MotionClipError):
        log.error("model failure:\n%s", traceback.format_exc())
    return exc


# ----------------------------------------------------------------------------------------- the app

def _error_response(status: int, field: str, message: str, headers: dict[str, str] | None = None):
    return JSONResponse(ProtocolError(field, message).to_json(), status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """Before any route: Host check (loopback), bearer token, body size (declared and streamed)."""

    OPEN_PATHS = {"/openapi.json"}

    def __init__(self, app, options: ServerOptions, loopback: bool):
        self.app = app
        self.options = options
        self.loopback = loopback
        self.token = options.token.encode() if options.token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        failure = self._check(scope, headers)
        if failure is not None:
            return await _error_response(failure.status, failure.field, failure.message, failure.headers)(
                scope, receive, send)
        limit, seen, started = self.options.max_body_bytes, 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _error_response(413, "", f"the request body is over {limit} bytes; send less (for a long motion, "
                                           f"fewer frames)")(scope, receive, send)

    def _check(self, scope, headers: dict[str, str]) -> HTTPFailure | None:
        if self.loopback and "host" in headers:
            host = headers["host"].strip().lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK_NAMES:
                return HTTPFailure(400, "Host", f"this server listens on loopback and answers only requests for "
                                                f"127.0.0.1 or localhost, not {headers['host']!r}")
        if self.token is not None and scope.get("path") not in self.OPEN_PATHS:
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                return HTTPFailure(401, "Authorization", "this server needs a token: send the header "
                                   "'Authorization: Bearer <token>' with the token it was started with"
                                   + ("" if auth else " (no Authorization header was sent)")
                                   + ("; the token sent does not match" if auth else ""),
                                   {"WWW-Authenticate": "Bearer"})
        declared = headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return HTTPFailure(400, "Content-Length", f"not a number: {declared!r}")
            if size > self.options.max_body_bytes:
                return HTTPFailure(413, "", f"the request body is {size} bytes; the limit is "
                                            f"{self.options.max_body_bytes} (for a long motion, send fewer frames)")
        return None


_JSON_TYPES = ("application/json",)


async def _read_json(request) -> Any:
    """The body as JSON; 415 for a form / text body, 400 for anything that is not JSON."""
    ctype = request.headers.get("content-type")
    if ctype is not None:
        media = ctype.split(";", 1)[0].strip().lower()
        if media not in _JSON_TYPES and not media.endswith("+json"):
            raise HTTPFailure(415, "Content-Type", f"send the body as JSON with 'Content-Type: application/json', "
                                                   f"not {media or 'an empty type'!r}")
    body = await request.body()
    if not body.strip():
        raise HTTPFailure(400, "", "the request body is empty; send a JSON object (see /openapi.json)")
    try:
        if len(body) > 256 * 1024:  # big motions: parse off the event loop
            from starlette.concurrency import run_in_threadpool
            return await run_in_threadpool(json.loads, body)
        return json.loads(body)
    except UnicodeDecodeError:
        raise HTTPFailure(400, "", "the request body is not UTF-8 text; send JSON") from None
    except json.JSONDecodeError as exc:
        raise HTTPFailure(400, "", f"the request body is not valid JSON: line {exc.lineno}, column {exc.colno}: "
                                   f"{exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise HTTPFailure(400, "", f"the request body is not usable JSON ({type(exc).__name__}: "
                                   f"{str(exc)[:120]})") from None


def _parse(kind, obj: Any):
    try:
        return kind.from_json(obj)
    except ProtocolError as exc:
        raise HTTPFailure(400 if not exc.field else 422, exc.field, exc.message) from None


def _to_motion(data: MotionData, field: str):
    from .io.json_motion import data_to_motion

    try:
        return data_to_motion(data, field)
    except MotionClipError as exc:
        raise HTTPFailure(422, field, str(exc)) from None


def _check_length(model, length) -> None:
    from .inference import InferenceError

    try:
        model.frames_for(length.frames, length.seconds, length.fps)
    except InferenceError as exc:
        field, msg = exc.field or "frames", str(exc)
        if msg.startswith(field + " "):
            msg = msg[len(field) + 1:]
        raise HTTPFailure(422, field, msg) from None


try:  # orjson writes the same bytes as json.dumps below, about five times faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None


def _json_bytes(obj: Any) -> bytes:
    if _orjson is not None:
        return _orjson.dumps(obj)
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _motion_json(motion, skeleton) -> bytes:
    from .io.json_motion import motion_to_data

    return _json_bytes(motion_to_data(motion, skeleton).to_json())


def create_app(worker: ModelWorker, options: ServerOptions, loopback: bool = True, warmup: bool = False):
    """The ASGI app (FastAPI) around a worker; `warmup` runs one batch at start."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .inference import InferenceError

    model = worker.model

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await worker.start()
        if warmup:
            t0 = time.perf_counter()
            await _warm_up(worker)
            log.info("warm-up took %.2f s", time.perf_counter() - t0)
        yield
        await worker.stop()

    app = FastAPI(title="motionclip", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Text to SMPL skeleton animation (MotionCLIP). Bodies follow the motionclip wire "
                              f"protocol, version {PROTOCOL_VERSION}; errors are "
                              '{"error": {"field": ..., "message": ...}}.')

    health = Health(status="ok", version=__version__, model=model.name, text_encoder=model.encoder.name,
                    device=str(model.device), fps=model.fps, max_frames=model.frame_limit())

    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    err = {"description": "refused: the body says which field and why",
           "content": {"application/json": {"schema": ref("Error")}}}
    common = {"400": err, "401": err, "413": err, "415": err, "422": err, "500": err, "503": err}

    def doc(request_schema: str | None, answer: str, summary: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"responses": {"200": {"description": "success",
                                                       "content": {"application/json": {"schema": ref(answer)}}},
                                               **({"400": err, "401": err} if request_schema is None else common)},
                                 "summary": summary}
        if request_schema:
            extra["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": ref(request_schema)}}}
        return extra

    def answer(body: bytes) -> Response:
        return Response(body, media_type="application/json")

    async def guarded(request: Request, kind, handle) -> Response:
        with worker.slot():
            req = _parse(kind, await _read_json(request))
            try:
                return await handle(req)
            except HTTPFailure:
                raise
            except InferenceError as exc:
                msg = str(exc)
                if exc.field and msg.startswith(exc.field + " "):
                    msg = msg[len(exc.field) + 1:]  # "frames must be ..." -> field "frames", "must be ..."
                raise HTTPFailure(422, exc.field, msg) from None
            except MotionClipError as exc:
                log.error("model failure: %s", exc)
                raise HTTPFailure(500, "", f"the model could not answer this request ({exc}); the server is still "
                                           "running") from None
            except Exception as exc:
                raise HTTPFailure(500, "", f"the model failed on this request ({type(exc).__name__}: "
                                           f"{str(exc)[:300]}); the server is still running, see its log") from None

    @app.get("/health", openapi_extra=doc(None, "Health", "the model being served, its device and limits"))
    async def get_health() -> Response:
        return JSONResponse({**health.to_json(), "jobs": worker.jobs,
                             "stats": {"batches": worker.batches, "generated": worker.batched_items}})

    @app.post("/generate", openapi_extra=doc("GenerateRequest", "Motion", "text -> motion"))
    async def generate(request: Request) -> Response:
        async def handle(req: GenerateRequest) -> Response:
            _check_length(model, req.length)
            motion = await worker.generate(req)
            return answer(await run_in_threadpool(_motion_json, motion, model.skeleton))
        return await guarded(request, GenerateRequest, handle)

    @app.post("/interpolate", openapi_extra=doc("InterpolateRequest", "Motions",
                                                "blend two prompts or motions: one motion per blend factor"))
    async def interpolate(request: Request) -> Response:
        async def handle(req: InterpolateRequest) -> Response:
            _check_length(model, req.length)
            a, b = (x if isinstance(x, str) else _to_motion(x, key) for x, key in ((req.a, "a"), (req.b, "b")))
            motions = await worker.run(lambda: model.interpolate(a, b, req.alphas, **req.length.as_kwargs()))

            def encode() -> bytes:
                from .io.json_motion import motion_to_data
                return _json_bytes(Motions([motion_to_data(m, model.skeleton) for m in motions]).to_json())
            return answer(await run_in_threadpool(encode))
        return await guarded(request, InterpolateRequest, handle)

    @app.post("/edit", openapi_extra=doc("EditRequest", "Motion", "move a motion along a text direction"))
    async def edit(request: Request) -> Response:
        async def handle(req: EditRequest) -> Response:
            motion = _to_motion(req.motion, "motion")
            if motion.num_frames > model.frame_limit(motion.fps):
                raise HTTPFailure(422, "motion.rotations",
                                  f"the motion is {motion.num_frames} frames at {motion.fps:g} fps; this model edits "
                                  f"at most {model.frame_limit(motion.fps)} frames at that rate: send a shorter clip")
            edited = await worker.run(model.edit, motion, req.source, req.target, req.strength)
            return answer(await run_in_threadpool(_motion_json, edited, model.skeleton))
        return await guarded(request, EditRequest, handle)

    @app.post("/recognize", openapi_extra=doc("RecognizeRequest", "Recognition",
                                              "rank labels by how well they name the motion's action"))
    async def recognize(request: Request) -> Response:
        async def handle(req: RecognizeRequest) -> Response:
            motion = _to_motion(req.motion, "motion")
            ranked = await worker.run(model.recognize, motion, req.labels)
            return answer(_json_bytes(Recognition(ranked[: req.top]).to_json()))
        return await guarded(request, RecognizeRequest, handle)

    @app.exception_handler(HTTPFailure)
    async def on_failure(request, exc: HTTPFailure):
        return _error_response(exc.status, exc.field, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request, exc: StarletteHTTPException):
        routes = {"/health": "GET", "/openapi.json": "GET", "/generate": "POST", "/interpolate": "POST",
                  "/edit": "POST", "/recognize": "POST"}
        path = request.url.path
        if exc.status_code == 404:
            msg = (f"no such endpoint {path!r}; this server has "
                   + ", ".join(f"{m} {p}" for p, m in routes.items()))
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {path}; use {routes.get(path, 'another method')}"
        else:
            msg = str(exc.detail)
        return _error_response(exc.status_code, "", msg, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def on_validation(request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error_response(422, loc, str(first.get("msg", "invalid request")))

    @app.exception_handler(Exception)
    async def on_crash(request, exc: Exception):
        log.error("unexpected failure on %s %s:\n%s", request.method, request.url.path,
                  "".join(traceback.format_exception(exc)))
        return _error_response(500, "", f"internal error ({type(exc).__name__}); the server is still running, "
                                        "see its log")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(json_schemas())
            if options.token:
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                for path, ops in schema["paths"].items():
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(GuardMiddleware, options=options, loopback=loopback)
    return app


async def _warm_up(worker: ModelWorker) -> None:
    """One single and one batched generation, so the first real request does not pay for first calls."""
    model = worker.model
    prompts = ["a person walks forward", "a person waves", "a person jumps", "a person kicks"]
    await worker.run(lambda: model.generate_batch([dict(prompt=prompts[0], frames=120)]))
    await worker.run(lambda: model.generate_batch([dict(prompt=p, frames=60 + 30 * i) for i, p in enumerate(prompts)]))
    await asyncio.get_running_loop().run_in_executor(
        None, _motion_json, model.generate(prompts[0], frames=30), model.skeleton)


# ----------------------------------------------------------------------------------------- running

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
                            timeout_graceful_shutdown=30, server_header=False, timeout_keep_alive=30,
                            h11_max_incomplete_event_size=64 * 1024)
    server = _server_class()(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server.on_started = lambda: announce(
        f"motionclip server: {model.run_dir} (text encoder {model.encoder.name}, device {model.device}) "
        f"listening on http://{shown}:{port}" + (" with a token" if options.token else "") + " (Ctrl+C to stop)")
    server.run(sockets=[sock])
    return server.stopped_by
