"""Between the wire and the model: JSON in, protocol types, motions, JSON out, and what an answer
may say about the machine (a run's name, never a path on it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import MotionClipError
from ..protocol import MotionData, ProtocolError
from .options import HTTPFailure

try:  # orjson writes the same bytes as json.dumps below, about five times faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None

# An absolute path with at least two parts (/home/me/runs, C:\runs\mine): not for answers.
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:[\\/]|/)(?:[\w.~-]+[\\/])+[\w.~-]*")


async def read_json(request) -> Any:
    """The body (already read, and its content type checked, by the guard) as JSON; 400 if it is not."""
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


def parse(kind, obj: Any):
    try:
        return kind.from_json(obj)
    except ProtocolError as exc:
        raise HTTPFailure(400 if not exc.field else 422, exc.field, exc.message) from None


def to_motion(data: MotionData, field: str):
    from ..io.json_motion import data_to_motion

    try:
        return data_to_motion(data, field)
    except MotionClipError as exc:
        raise HTTPFailure(422, field, str(exc)) from None


def check_length(model, length) -> None:
    from ..inference import InferenceError

    try:
        model.frames_for(length.frames, length.seconds, length.fps)
    except InferenceError as exc:
        field, msg = exc.field or "frames", str(exc)
        if msg.startswith(field + " "):
            msg = msg[len(field) + 1:]
        raise HTTPFailure(422, field, msg) from None


def json_bytes(obj: Any) -> bytes:
    if _orjson is not None:
        return _orjson.dumps(obj)
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def public_name(model) -> str:
    """The model as answers name it: "built-in", or its run folder's name (not the folder's path)."""
    name = str(model.name)
    return name if name == "built-in" else (Path(name).name or "model")


def motion_data(motion, model) -> MotionData:
    """A motion the model made, as the wire type; its meta names the run, not the run's path."""
    from ..io.json_motion import motion_to_data

    data = motion_to_data(motion, model.skeleton)
    if isinstance(data.meta.get("generator"), str):
        data.meta["generator"] = public_name(model)
    return data


def motion_json(motion, model) -> bytes:
    return json_bytes(motion_data(motion, model).to_json())


def without_paths(text: str, model) -> str:
    """`text` (an error's message) with the run's path as its name and any other absolute path elided."""
    run = Path(getattr(model, "run_dir", "") or "")
    for known in {str(run), str(run.resolve())} - {"", "."}:
        text = text.replace(known, public_name(model))
    return _PATH.sub("<path>", text)
