"""The routes, their OpenAPI schema and the error answers: a FastAPI app around a ModelWorker.

    GET  /health        model, text encoder, device, version, protocol, limits
    POST /generate      prompt -> motion
    POST /interpolate   two prompts or motions -> one motion per blend factor
    POST /edit          motion + text direction -> motion
    POST /recognize     motion + labels -> labels ranked
    GET  /openapi.json  the schema of all of the above

Bodies are the wire protocol's (core/protocol.py): requests are validated by its ``from_json``
and every refusal is a 4xx with ``{"error": {"field", "message"}}``. A failure inside the model
is a 500 with a message (no paths of this machine in it), and the server goes on serving.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Any, Awaitable, Callable

# At module level: FastAPI resolves the handlers' annotations in this module's namespace.
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..errors import MotionClipError
from ..protocol import (PROTOCOL_VERSION, EditRequest, GenerateRequest, Health, InterpolateRequest, Motions,
                        Recognition, RecognizeRequest, json_schemas)
from .convert import (check_length, json_bytes, motion_data, motion_json, parse, public_name, read_json, to_motion,
                      without_paths)
from .guard import GuardMiddleware
from .options import HTTPFailure, ServerOptions, error_response, log
from .worker import ModelWorker

ROUTES = {"/health": "GET", "/openapi.json": "GET", "/generate": "POST", "/interpolate": "POST",
          "/edit": "POST", "/recognize": "POST"}
JSON_POSTS = frozenset(path for path, method in ROUTES.items() if method == "POST")


def create_app(worker: ModelWorker, options: ServerOptions, loopback: bool = True, warmup: bool = False):
    """The ASGI app (FastAPI) around a worker; `warmup` runs one batch at start."""
    from fastapi import FastAPI

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
    _add_routes(app, worker)
    _add_error_handlers(app)
    _add_schema(app, options)
    app.add_middleware(GuardMiddleware, options=options, loopback=loopback, json_posts=JSON_POSTS)
    return app


# ----------------------------------------------------------------------------------------- routes

def _doc(request_schema: str | None, answer: str, summary: str) -> dict[str, Any]:
    """The OpenAPI extras of one route: its request body and its answers."""
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    err = {"description": "refused: the body says which field and why",
           "content": {"application/json": {"schema": ref("Error")}}}
    common = {code: err for code in ("400", "401", "408", "413", "415", "422", "500", "503")}
    extra: dict[str, Any] = {"responses": {"200": {"description": "success",
                                                   "content": {"application/json": {"schema": ref(answer)}}},
                                           **({"400": err, "401": err} if request_schema is None else common)},
                             "summary": summary}
    if request_schema:
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(request_schema)}}}
    return extra


def _answer(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def _guarded(worker: ModelWorker, request: Request, kind, handle: Callable[[Any], Awaitable[Response]]):
    """A job slot (the body is already read), the request parsed, `handle` run; its failures as answers."""
    from ..inference import InferenceError

    with worker.slot():
        req = parse(kind, await read_json(request))
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
            raise HTTPFailure(500, "", without_paths(f"the model could not answer this request ({exc}); the server "
                                                     "is still running", worker.model)) from None
        except Exception as exc:
            raise HTTPFailure(500, "", f"the model failed on this request ({type(exc).__name__}: "
                                       f"{without_paths(str(exc), worker.model)[:300]}); the server is still running, "
                                       "see its log") from None


def _add_routes(app, worker: ModelWorker) -> None:
    from starlette.concurrency import run_in_threadpool

    model = worker.model
    health = Health(status="ok", version=__version__, model=public_name(model), text_encoder=model.encoder.name,
                    device=str(model.device), fps=model.fps, max_frames=model.frame_limit())

    @app.get("/health", openapi_extra=_doc(None, "Health", "the model being served, its device and limits"))
    async def get_health() -> Response:
        return JSONResponse({**health.to_json(), "jobs": worker.jobs,
                             "stats": {"batches": worker.batches, "generated": worker.batched_items}})

    post = _poster(app, worker)

    @post("/generate", GenerateRequest, "Motion", "text -> motion")
    async def generate(req: GenerateRequest) -> Response:
        check_length(model, req.length)
        motion = await worker.generate(req)
        return _answer(await run_in_threadpool(motion_json, motion, model))

    @post("/interpolate", InterpolateRequest, "Motions", "blend two prompts or motions: one motion per blend factor")
    async def interpolate(req: InterpolateRequest) -> Response:
        check_length(model, req.length)
        a, b = (x if isinstance(x, str) else to_motion(x, key) for x, key in ((req.a, "a"), (req.b, "b")))
        motions = await worker.run(lambda: model.interpolate(a, b, req.alphas, **req.length.as_kwargs()))

        def encode() -> bytes:
            return json_bytes(Motions([motion_data(m, model) for m in motions]).to_json())
        return _answer(await run_in_threadpool(encode))

    @post("/edit", EditRequest, "Motion", "move a motion along a text direction")
    async def edit(req: EditRequest) -> Response:
        motion = to_motion(req.motion, "motion")
        if motion.num_frames > model.frame_limit(motion.fps):
            raise HTTPFailure(422, "motion.rotations",
                              f"the motion is {motion.num_frames} frames at {motion.fps:g} fps; this model edits "
                              f"at most {model.frame_limit(motion.fps)} frames at that rate: send a shorter clip")
        edited = await worker.run(model.edit, motion, req.source, req.target, req.strength)
        return _answer(await run_in_threadpool(motion_json, edited, model))

    @post("/recognize", RecognizeRequest, "Recognition", "rank labels by how well they name the motion's action")
    async def recognize(req: RecognizeRequest) -> Response:
        motion = to_motion(req.motion, "motion")
        ranked = await worker.run(model.recognize, motion, req.labels)
        return _answer(json_bytes(Recognition(ranked[: req.top]).to_json()))


def _poster(app, worker: ModelWorker):
    """A decorator factory: `@post(path, kind, answer, summary)` makes `handle(req)` the POST route at `path`,
    run by _guarded (a job slot, the body parsed as `kind`, failures as answers), named after `handle`."""
    def post(path: str, kind, answer: str, summary: str):
        def register(handle: Callable[[Any], Awaitable[Response]]):
            async def route(request: Request) -> Response:
                return await _guarded(worker, request, kind, handle)
            app.add_api_route(path, route, methods=["POST"], name=handle.__name__,
                              openapi_extra=_doc(kind.__name__, answer, summary))
            return handle
        return register
    return post


# ----------------------------------------------------------------------------------------- errors, schema

def _add_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(HTTPFailure)
    async def on_failure(request, exc: HTTPFailure):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request, exc: StarletteHTTPException):
        path = request.url.path
        if exc.status_code == 404:
            msg = f"no such endpoint {path!r}; this server has " + ", ".join(f"{m} {p}" for p, m in ROUTES.items())
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {path}; use {ROUTES.get(path, 'another method')}"
        else:
            msg = str(exc.detail)
        return error_response(exc.status_code, "", msg, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def on_validation(request, exc: RequestValidationError):
        first = (exc.errors() or [{}])[0]
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error_response(422, loc, str(first.get("msg", "invalid request")))

    @app.exception_handler(Exception)
    async def on_crash(request, exc: Exception):
        log.error("unexpected failure on %s %s:\n%s", request.method, request.url.path,
                  "".join(traceback.format_exception(exc)))
        return error_response(500, "", f"internal error ({type(exc).__name__}); the server is still running, "
                                       "see its log")


def _add_schema(app, options: ServerOptions) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(json_schemas())
            if options.token:
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                for ops in schema["paths"].values():
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _warm_up(worker: ModelWorker) -> None:
    """One single and one batched generation, so the first real request does not pay for first calls."""
    import asyncio

    model = worker.model
    prompts = ["a person walks forward", "a person waves", "a person jumps", "a person kicks"]
    await worker.run(lambda: model.generate_batch([dict(prompt=prompts[0], frames=120)]))
    await worker.run(lambda: model.generate_batch([dict(prompt=p, frames=60 + 30 * i) for i, p in enumerate(prompts)]))
    await asyncio.get_running_loop().run_in_executor(None, motion_json, model.generate(prompts[0], frames=30), model)
