"""What every part of the server shares: its options, its log, and the refusal it answers with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from ..errors import MotionClipError
from ..netconf import DEFAULT_HOST, DEFAULT_PORT
from ..protocol import MAX_BODY_BYTES, ProtocolError

log = logging.getLogger("motionclip.server")

RETRY_AFTER_S = 1  # what a 503 asks the client to wait before it tries again


class ServerError(MotionClipError):
    """The server cannot start (port in use, bad option, an unsafe exposure)."""


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
    read_timeout: float = 30.0     # seconds a client has for a request's headers, and again for its body
    allow_remote_without_token: bool = False  # listen beyond loopback with no token (a trusted network)


class HTTPFailure(Exception):
    """An answer other than 200: status, field, message (and headers). A 503 always says when to retry."""

    def __init__(self, status: int, field: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, dict(headers or {})
        if status == 503:
            self.headers.setdefault("Retry-After", str(RETRY_AFTER_S))

    def body(self) -> dict[str, Any]:
        return ProtocolError(self.field, self.message).to_json()

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_response(status: int, field: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return HTTPFailure(status, field, message, headers).response()
