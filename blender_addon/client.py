"""HTTP client for the motionclip backend: standard library only (urllib), no bpy.

Every failure becomes a :class:`BackendError` whose message says what to do: the server is not
running, the token is wrong, the request was refused (with the server's field and message), or
the answer was not a motion.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .protocol_loader import protocol

DEFAULT_URL = "http://127.0.0.1:8765"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class BackendError(Exception):
    """A failed call to the backend, with a message a person can act on. A refused request also
    carries the HTTP ``status`` and the ``field`` the server named (for the panel to say which of
    its own fields to change)."""

    def __init__(self, message: str, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


def is_local(url: str) -> bool:
    return (urllib.parse.urlsplit(url).hostname or "") in LOOPBACK


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str = "", timeout: float = 120.0):
        url = (url or DEFAULT_URL).strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"backend URL {url!r} is not an http:// address; use e.g. {DEFAULT_URL}")
        self.url, self.token, self.timeout = url, token.strip(), timeout

    # ------------------------------------------------------------ transport
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw, field = exc.read(), None
            try:
                body = json.loads(raw.decode("utf-8"))
                detail = protocol.error_message(body)
                err = body.get("error") if isinstance(body, dict) else None
                field = (err.get("field") or None) if isinstance(err, dict) else None
            except ValueError:
                detail = raw.decode("utf-8", "replace").strip()[:300] or exc.reason
            if exc.code in (401, 403):
                raise BackendError(f"the backend at {self.url} refused the token ({detail}); set Token in "
                                   "Preferences > Add-ons > motionclip to the one the server was started with "
                                   "(motionclip serve --token)", exc.code, field) from None
            raise BackendError(f"the backend refused the request (HTTP {exc.code}): {detail}", exc.code,
                               field) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)) or "refused" in str(reason).lower():
                raise BackendError(f"cannot reach the backend at {self.url}: nothing is listening there. Start it "
                                   "(Preferences > Add-ons > motionclip > Start Backend, or `motionclip serve`) "
                                   "or fix the URL") from None
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise BackendError(f"the backend at {self.url} did not answer within {timeout or self.timeout:g} s; "
                                   "it may be busy or still loading the model, try again") from None
            raise BackendError(f"cannot reach the backend at {self.url}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise BackendError(f"the backend at {self.url} did not answer within {timeout or self.timeout:g} s; "
                               "it may be busy or still loading the model, try again") from None
        except (ConnectionError, OSError) as exc:
            raise BackendError(f"the connection to the backend at {self.url} failed: {exc}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise BackendError(f"the answer from {self.url}{path} is not JSON; is this URL a motionclip server?") from None

    # ------------------------------------------------------------ endpoints
    def health(self, timeout: float = 5.0) -> "protocol.Health":
        return _parse(protocol.Health.from_json, self._call("GET", "/health", timeout=timeout))

    def generate(self, prompt: str, *, frames: int | None = None, seconds: float | None = None,
                 fps: float | None = None, seed: int | None = None) -> "protocol.MotionData":
        req = protocol.GenerateRequest(prompt=prompt, length=protocol.Length(frames=frames, seconds=seconds, fps=fps),
                                       seed=seed)
        return _motion(self._call("POST", "/generate", req.to_json()))

    def interpolate(self, a, b, alphas: list[float], *, frames: int | None = None, seconds: float | None = None,
                    fps: float | None = None, seed: int | None = None) -> list["protocol.MotionData"]:
        req = protocol.InterpolateRequest(a=a, b=b, alphas=list(alphas),
                                          length=protocol.Length(frames=frames, seconds=seconds, fps=fps), seed=seed)
        answer = self._call("POST", "/interpolate", req.to_json())
        motions = answer.get("motions") if isinstance(answer, dict) else answer
        if not isinstance(motions, list) or len(motions) != len(alphas):
            raise BackendError(f"the backend's /interpolate answer has no list of {len(alphas)} motions")
        return [_motion(m) for m in motions]

    def edit(self, motion, source: str, target: str, strength: float = 1.0) -> "protocol.MotionData":
        req = protocol.EditRequest(motion=motion, source=source, target=target, strength=strength)
        return _motion(self._call("POST", "/edit", req.to_json()))

    def recognize(self, motion, labels: list[str], top: int = 5) -> list[tuple[str, float]]:
        req = protocol.RecognizeRequest(motion=motion, labels=labels, top=top)
        return _parse(protocol.Recognition.from_json, self._call("POST", "/recognize", req.to_json())).ranked


def _parse(fn, obj):
    try:
        return fn(obj)
    except protocol.ProtocolError as exc:
        raise BackendError(f"the backend's answer is not what this add-on expects ({exc}); "
                           "update the add-on and the backend together") from None


def _motion(obj) -> "protocol.MotionData":
    if isinstance(obj, dict) and "motion" in obj and "rotations" not in obj:
        obj = obj["motion"]
    motion = _parse(protocol.MotionData.from_json, obj)
    if motion.rest_offsets is None:
        raise BackendError("the backend's motion has no rest_offsets (the rest skeleton); update the backend")
    return motion
