"""A client of the local server, standard library only (urllib): the CLI's `--server URL` uses it.

    client = ServerClient("http://127.0.0.1:8765", token=None)
    client.health()                                  -> Health
    client.generate(GenerateRequest("a person waves", Length(frames=120)))   -> MotionData
    client.interpolate(InterpolateRequest(...))      -> list[MotionData]
    client.edit(EditRequest(...))                    -> MotionData
    client.recognize(RecognizeRequest(...))          -> Recognition

Requests are validated by the protocol before they are sent; a refusal by the server raises
ClientError with the server's own message (which field, and why) and the HTTP status.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import MotionClipError
from .netconf import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL, TOKEN_ENV, is_loopback_name  # noqa: F401 (re-exported)
from .protocol import (EditRequest, GenerateRequest, Health, InterpolateRequest, MotionData, Motions, ProtocolError,
                       Recognition, RecognizeRequest, error_message)


class ClientError(MotionClipError):
    """The server refused a request or could not be reached; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, field: str = ""):
        super().__init__(message)
        self.status = status
        self.field = field


class ServerClient:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 120.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClientError(f"server URL {url!r} is not an http:// address; e.g. {DEFAULT_URL}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)
        self.timeout = float(timeout)
        # A local server is reached directly, whatever http_proxy says.
        local = is_loopback_name(parsed.hostname or "")
        self._open = (urllib.request.build_opener(urllib.request.ProxyHandler({})).open if local
                      else urllib.request.urlopen)

    # --- the API --------------------------------------------------------------------------------

    def health(self) -> Health:
        return Health.from_json(self._call("GET", "/health"))

    def generate(self, request: GenerateRequest) -> MotionData:
        return MotionData.from_json(self._call("POST", "/generate", request.to_json()), "answer")

    def interpolate(self, request: InterpolateRequest) -> list[MotionData]:
        return Motions.from_json(self._call("POST", "/interpolate", request.to_json())).motions

    def edit(self, request: EditRequest) -> MotionData:
        return MotionData.from_json(self._call("POST", "/edit", request.to_json()), "answer")

    def recognize(self, request: RecognizeRequest) -> Recognition:
        return Recognition.from_json(self._call("POST", "/recognize", request.to_json()))

    # --- transport ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self._open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = raw.decode("utf-8", "replace")[:300] or exc.reason
            field = obj.get("error", {}).get("field", "") if isinstance(obj, dict) and isinstance(
                obj.get("error"), dict) else ""
            raise ClientError(f"the server at {self.url} refused {method} {path} (HTTP {exc.code}): "
                              f"{error_message(obj)}", exc.code, field or "") from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"no answer from a motionclip server at {self.url} ({reason}); start one with "
                              f"`motionclip serve` or pass the right --server URL") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(f"the server at {self.url} answered {path} with something that is not JSON; "
                              "is it a motionclip server?") from None


def check(request_type, obj: dict[str, Any]):
    """Build and validate a request from keyword values (None dropped), raising ClientError on bad values."""
    try:
        return request_type.from_json({k: v for k, v in obj.items() if v is not None})
    except ProtocolError as exc:
        raise ClientError(f"{exc.field}: {exc.message}" if exc.field else exc.message, 0, exc.field) from None
