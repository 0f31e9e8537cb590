"""The request guard: what a request must pass before any route sees it, and slow clients.

In order: the Host header (on loopback, only names of this machine: no DNS rebinding), the bearer
token, the declared body size, the content type (POST bodies are ``application/json``, so a web
page cannot make the server work with a form or a text body), then the whole body is read, within
the size limit and the read timeout, before the request may take a job slot. A client that goes
away while sending is one log line. Every refusal here closes the connection (the rest of the body
is not read).

`protocol_class` is uvicorn's HTTP/1.1 protocol with a deadline on the request line and headers,
which uvicorn does not have: a connection that does not finish its headers within the read timeout
of opening (or of its previous answer) is closed.
"""

from __future__ import annotations

import asyncio
import hmac

from ..netconf import LOOPBACK_HOSTS
from .options import HTTPFailure, ServerOptions, log

JSON_MEDIA_TYPE = "application/json"


class _Refused(Exception):
    def __init__(self, failure: HTTPFailure):
        super().__init__(failure.message)
        self.failure = failure


class _ClientGone(Exception):
    pass


class GuardMiddleware:
    """ASGI middleware: checks the request, then reads its body, then hands both to the app."""

    OPEN_PATHS = {"/openapi.json"}

    def __init__(self, app, options: ServerOptions, loopback: bool, json_posts: frozenset[str] = frozenset()):
        self.app = app
        self.options = options
        self.loopback = loopback
        self.json_posts = json_posts  # the paths whose POST body must be JSON
        self.token = options.token.encode() if options.token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            failure = self._check(scope, headers)
            if failure is not None:
                raise _Refused(failure)
            body = await self._read_body(scope, receive)
        except _Refused as refused:
            response = refused.failure
            response.headers["Connection"] = "close"  # the rest of the body is not read
            return await response.response()(scope, receive, send)
        except _ClientGone:
            return

        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    # --- before the body ----------------------------------------------------------------------

    def _check(self, scope, headers: dict[str, str]) -> HTTPFailure | None:
        return (self._check_host(headers) or self._check_token(scope, headers) or self._check_length(headers)
                or self._check_type(scope, headers))

    def _check_host(self, headers: dict[str, str]) -> HTTPFailure | None:
        if self.loopback and "host" in headers:
            host = headers["host"].strip().lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in LOOPBACK_HOSTS:
                return HTTPFailure(400, "Host", f"this server listens on loopback and answers only requests for "
                                                f"127.0.0.1 or localhost, not {headers['host']!r}")
        return None

    def _check_token(self, scope, headers: dict[str, str]) -> HTTPFailure | None:
        if self.token is None or scope.get("path") in self.OPEN_PATHS:
            return None
        auth = headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token):
            return None
        return HTTPFailure(401, "Authorization", "this server needs a token: send the header "
                           "'Authorization: Bearer <token>' with the token it was started with"
                           + ("" if auth else " (no Authorization header was sent)")
                           + ("; the token sent does not match" if auth else ""),
                           {"WWW-Authenticate": "Bearer"})

    def _check_length(self, headers: dict[str, str]) -> HTTPFailure | None:
        declared = headers.get("content-length")
        if declared is None:
            return None
        try:
            size = int(declared)
        except ValueError:
            return HTTPFailure(400, "Content-Length", f"not a number: {declared!r}")
        if size > self.options.max_body_bytes:
            return HTTPFailure(413, "", f"the request body is {size} bytes; the limit is "
                                        f"{self.options.max_body_bytes} (for a long motion, send fewer frames)")
        return None

    def _check_type(self, scope, headers: dict[str, str]) -> HTTPFailure | None:
        if scope.get("method") != "POST" or scope.get("path") not in self.json_posts:
            return None
        ctype = headers.get("content-type")
        media = (ctype or "").split(";", 1)[0].strip().lower()
        if media == JSON_MEDIA_TYPE:
            return None
        sent = "no Content-Type header was sent" if ctype is None else f"not {media or 'an empty type'!r}"
        return HTTPFailure(415, "Content-Type", f"send the body as JSON with the header 'Content-Type: "
                                                f"{JSON_MEDIA_TYPE}' ({sent})")

    # --- the body -----------------------------------------------------------------------------

    async def _read_body(self, scope, receive) -> bytes:
        """The whole body, within the size limit and the read timeout; _Refused or _ClientGone otherwise."""
        loop = asyncio.get_running_loop()
        limit, timeout = self.options.max_body_bytes, self.options.read_timeout
        deadline = loop.time() + timeout
        chunks: list[bytes] = []
        seen = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                _note(scope, f"sent {seen} bytes of its body in {timeout:g} s and was cut off")
                raise _Refused(HTTPFailure(408, "", f"the request body did not arrive within {timeout:g} s "
                                                    f"({seen} bytes came); send it again in one go")) from None
            if message["type"] == "http.disconnect":
                _note(scope, f"went away after sending {seen} bytes of its body")
                raise _ClientGone()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise _Refused(HTTPFailure(413, "", f"the request body is over {limit} bytes; send less (for a "
                                                    f"long motion, fewer frames)"))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _note(scope, what: str) -> None:
    """One log line about a client's request that was not served."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "a client"
    log.info("%s %s %s: %s", who, scope.get("method", "?"), scope.get("path", "?"), what)


def protocol_class(read_timeout: float):
    """uvicorn's h11 protocol, closing connections that do not complete a request's headers in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = self.loop.call_later(read_timeout, self._on_deadline)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _on_deadline(self) -> None:
            self._header_deadline = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request being served
            if waiting and not self.transport.is_closing():
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
                log.info("%s: no complete request within %g s; connection closed", client, read_timeout)
                self.transport.close()

    return DeadlineH11Protocol
