"""An ASGI layer in front of Quart for the hottest, simplest routes.

``GET /health`` is what load balancers and orchestrators hit many times a second; it
touches no dependency and its answer never changes. Going through Quart costs a request
context, hooks and a response object per call, which halves throughput. This layer answers
it directly, keeping the contract's headers (``X-Request-ID``, CORS) and the request
metrics; everything else (including ``OPTIONS /health``) goes to the Quart app untouched.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import logs
from .runtime import Runtime

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEALTH_BODY = b'{"status":"ok"}'
_EXPOSE = (b"access-control-expose-headers", b"X-Request-ID, Location, Retry-After")


class FastPaths:
    def __init__(self, app: Any, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/health" and method in ("GET", "HEAD"):
                await self._health(scope, send)
                return
            # The two below only when nothing about the request is unusual: no API keys
            # to check, no query string; the rest (and every rule's edge) stays Quart's.
            if not self.rt.settings.api_keys and not scope["query_string"]:
                if path == "/api/status" and method == "GET" and _no_body(scope):
                    await self._status(scope, send)
                    return
                if path == "/api/generate" and method == "POST" and self._plain_json(scope):
                    await self._generate(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _plain_json(self, scope: Scope) -> bool:
        """A JSON body of a declared length within the limit."""
        ctype = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                ctype = value.split(b";", 1)[0].strip().lower()
            elif name == b"content-length":
                length = value
        return (
            ctype is not None and (ctype == b"application/json" or ctype.endswith(b"+json"))
            and length is not None and length.isdigit() and int(length) <= self.rt.settings.max_body_bytes
        )

    def _headers(self, scope: Scope, body: bytes, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
        rid = origin = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value
            elif name == b"origin":
                origin = value
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   _EXPOSE, (b"x-request-id", rid or logs.new_request_id().encode())]
        origins = self.rt.settings.cors_origins
        if "*" in origins:
            headers.append((b"access-control-allow-origin", b"*"))
        elif origin is not None and origin.decode("latin-1") in origins:
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        for k, v in (extra or {}).items():
            headers.append((k.lower().encode(), v.encode("latin-1")))
        return headers

    async def _answer(self, scope: Scope, send: Send, status: int, body: bytes,
                      extra: dict[str, str] | None = None) -> None:
        await send({"type": "http.response.start", "status": status, "headers": self._headers(scope, body, extra)})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _status(self, scope: Scope, send: Send) -> None:
        from ..pipeline.languages import supported
        from .app import _json

        t0 = time.perf_counter()
        await self._answer(scope, send, 200, _json.encode(self.rt.status(supported(self.rt.sandbox.languages()))))
        self.rt.metrics.request("/api/status", "GET", 200, time.perf_counter() - t0)

    async def _generate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /api/generate as the Quart route does it, without the framework around it."""
        from .. import errors
        from .app import _json, accept_generate, decode_json, error_parts

        t0 = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        data = b"".join(chunks)
        rt = self.rt
        try:
            status, doc, extra = await accept_generate(rt, decode_json(data), False)
            out = _json.encode(doc)
        except errors.AtomicError as exc:
            status, out, extra = error_parts(exc)
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


def _no_body(scope: Scope) -> bool:
    return not any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])
