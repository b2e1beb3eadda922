"""The ASGI layer in front of Quart: the hottest, simplest routes, and kept-alive
connections that outlive an early answer.

``GET /health`` is what load balancers and orchestrators hit many times a second; it
touches no dependency and its answer never changes. Going through Quart costs a request
context, hooks and a response object per call, which halves throughput. This layer
answers it (and, when nothing about the request is unusual, ``GET /api/status`` and
``POST /api/generate``) directly, keeping the contract's headers (:mod:`.http`) and the
request metrics; everything else goes to the Quart app.

The rate limit (:mod:`atomic.ratelimit`) is here too, in front of both: every request and
WebSocket handshake takes a token, but for ``/health``, CORS preflights and the web page's
files. Over HTTP/2 (TLS, by ALPN) everything here works as on HTTP/1.1: the h2 stack leaves
out the connection-specific headers an early answer carries (``Connection: close``).

Every request with a body also goes through :class:`BodyGuard`: an answer that comes
before the body has been read (a 401, 404, 405, 413 ...) would leave the rest of the body
on the connection, to be taken for the next request, and Hypercorn's attempt to close
such a connection was cancelled by Quart before it happened: the kept-alive client's
next request then hung. The guard reads what is left of the body (up to the size limit,
within ``body_drain_s``) before the answer's end goes out, and otherwise marks the
answer ``Connection: close`` and makes sure the close happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .. import errors, tracing
from ..contract import GenerateRequest, decode
from ..ratelimit import retry_after_header
from .http import client_key, contract_headers, encode, error_body, error_parts
from .routes import accept_generate
from .state import Runtime
from .web import is_public

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

HEALTH_BODY = b'{"status":"ok"}'
log = logging.getLogger("atomic.server")


class FastPaths:
    def __init__(self, app: ASGIApp, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path, method = scope["path"], scope["method"]
            length = _body_length(scope)
            if length != 0:
                guard = BodyGuard(receive, send, length, self.rt.settings.max_body_bytes,
                                  self.rt.settings.body_drain_s)
                receive, send = guard.receive, guard.send
            if path == "/health" and method in ("GET", "HEAD"):
                await self._health(scope, send)
                return
            if self.rt.limiter is not None and method != "OPTIONS" and not is_public(path):
                wait = await self._take_token(scope)
                if wait:
                    await self._limited(scope, send, wait)
                    return
            # The two below only when nothing about the request is unusual: no API keys
            # to check, no query string; the rest (and every rule's edge) stays Quart's.
            if not self.rt.settings.api_keys and not scope["query_string"]:
                if path == "/api/status" and method == "GET" and length == 0:
                    await self._status(scope, send)
                    return
                if path == "/api/generate" and method == "POST" and self._plain_json(scope, length):
                    await self._generate(scope, receive, send)
                    return
        elif kind == "websocket" and self.rt.limiter is not None:
            wait = await self._take_token(scope)
            if wait:
                await self._limited_ws(scope, send, wait)
                return
        await self.app(scope, receive, send)

    async def _take_token(self, scope: Scope) -> float:
        """The rate limit's decision for this request: 0.0 to go on, else the seconds until
        its client's next token. Decided here when the limiter can (always, for the local
        one), else asked of what it shares its buckets with."""
        limiter = self.rt.limiter
        assert limiter is not None
        key = client_key(scope, self.rt.settings.api_keys)
        wait = limiter.acquire_nowait(key)
        if wait is None:
            wait = await limiter.acquire(key)
        return wait

    def _limit_error(self, wait: float) -> tuple[bytes, dict[str, str]]:
        after = retry_after_header(wait)
        exc = errors.RateLimited(f"too many requests: at most {self.rt.settings.rate_limit}; "
                                 f"retry after {after} s", retry_after=wait)
        return error_body(exc), {"Retry-After": after}

    async def _limited(self, scope: Scope, send: Send, wait: float) -> None:
        """429 ``rate_limited``; a body the client sent is drained by the BodyGuard."""
        t0 = time.perf_counter()
        body, extra = self._limit_error(wait)
        await self._answer(scope, send, 429, body, extra)
        self.rt.metrics.request("rate_limited", scope["method"], 429, time.perf_counter() - t0)

    async def _limited_ws(self, scope: Scope, send: Send, wait: float) -> None:
        """A WebSocket handshake refused with the same 429 (ASGI's denial response), or,
        where the server cannot send one, closed before it is accepted."""
        body, extra = self._limit_error(wait)
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 429,
                        "headers": self._headers(scope, body, extra)})
            await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        else:
            await send({"type": "websocket.close", "code": 1008})
        self.rt.metrics.request("rate_limited", "GET", 429, 0.0)

    def _plain_json(self, scope: Scope, length: int | None) -> bool:
        """A JSON body of a declared length within the limit."""
        if length is None or length > self.rt.settings.max_body_bytes:
            return False
        for name, value in scope["headers"]:
            if name == b"content-type":
                ctype = value.split(b";", 1)[0].strip().lower()
                return ctype == b"application/json" or ctype.endswith(b"+json")
        return False

    def _headers(self, scope: Scope, body: bytes, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += contract_headers(scope["headers"], self.rt.settings.cors_origins)
        for k, v in (extra or {}).items():
            headers.append((k.lower().encode(), v.encode("latin-1")))
        return headers

    async def _answer(self, scope: Scope, send: Send, status: int, body: bytes,
                      extra: dict[str, str] | None = None) -> None:
        await send({"type": "http.response.start", "status": status, "headers": self._headers(scope, body, extra)})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _status(self, scope: Scope, send: Send) -> None:
        t0 = time.perf_counter()
        await self._answer(scope, send, 200, encode(self.rt.status()))
        self.rt.metrics.request("/api/status", "GET", 200, time.perf_counter() - t0)

    async def _generate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /api/generate as the Quart route does it, without the framework around it."""
        t0 = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        rt = self.rt
        try:
            req = decode(b"".join(chunks), GenerateRequest)
            status, doc, extra = await accept_generate(rt, req, False, _traceparent(scope) if tracing.enabled() else None)
            out = encode(doc)
        except errors.AtomicError as exc:
            status, out, extra = error_parts(exc)
        except Exception:  # a bug: the contract's 500, as the Quart app answers one
            log.exception("POST /api/generate: unexpected error")
            status, out, extra = error_parts(errors.AtomicError("an internal error occurred; see the server log"))
        await self._answer(scope, send, status, out, extra)
        rt.metrics.request("/api/generate", "POST", status, time.perf_counter() - t0)

    async def _health(self, scope: Scope, send: Send) -> None:
        t0 = time.perf_counter()
        headers = self._headers(scope, HEALTH_BODY)  # HEAD too: the length GET would have
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else HEALTH_BODY
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.rt.metrics.request("/health", scope["method"], 200, time.perf_counter() - t0)

    def __getattr__(self, name: str) -> Any:
        # Tests and tools look at the Quart app's attributes (url_map ...) through us.
        return getattr(self.app, name)


def _traceparent(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return bytes(value)
    return None


def _body_length(scope: Scope) -> int | None:
    """The declared body length: 0 without a body, None when chunked (unknown)."""
    length = 0
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else 0
        elif name == b"transfer-encoding":
            return None
    return length


class BodyGuard:
    """Keeps a kept-alive connection usable when the answer comes before the body is read.

    Wraps one request's ``receive`` and ``send``. Before the last part of the answer goes
    out, what is left of the body is read and dropped (another task, Quart's, may be
    reading it too: both go through :meth:`receive`). A body larger than ``limit`` is not
    worth reading: the answer says ``Connection: close``. Either way the last send is
    shielded (bounded), so the server finishes the response and the connection's fate
    even when the application's task is cancelled right after it (Quart cancels its
    request task as soon as it sees the disconnect that the end of a response causes).
    """

    __slots__ = ("_done", "_length", "_limit", "_receive", "_send", "_timeout", "closing")

    def __init__(self, receive: Receive, send: Send, length: int | None, limit: int, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self._length = length
        self._limit = limit
        self._timeout = timeout
        self._done = trio.Event()
        self.closing = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done.set()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self._done.is_set():
            if self._length is None or self._length > self._limit:
                self.closing = True
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
        elif kind == "http.response.body" and not message.get("more_body", False):
            with trio.move_on_after(self._timeout, shield=True):
                if not self.closing and not self._done.is_set():
                    await self._drain()
            with trio.move_on_after(self._timeout, shield=True):
                await self._send(message)
            return
        await self._send(message)

    async def _drain(self) -> None:
        async def pump() -> None:
            while True:
                await self.receive()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            await self._done.wait()
            nursery.cancel_scope.cancel()


__all__ = ["BodyGuard", "FastPaths"]
