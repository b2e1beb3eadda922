"""An ASGI layer in front of Quart for the hottest, simplest route.

``GET /health`` is what load balancers and orchestrators hit many times a second; it
touches no dependency and its answer never changes. Going through Quart costs a request
context, hooks and a response object per call, which halves throughput. This layer answers
it directly, keeping the contract's headers (``X-Request-ID``, CORS) and the request
metrics; everything else (including ``OPTIONS /health``) goes to the Quart app untouched.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from collections.abc import Awaitable, Callable

from .runtime import Runtime

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HEALTH_BODY = b'{"status":"ok"}'
_BASE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(HEALTH_BODY)).encode()),
    (b"access-control-expose-headers", b"X-Request-ID, Location, Retry-After"),
]


class FastPaths:
    def __init__(self, app: Any, rt: Runtime) -> None:
        self.app = app
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
            await self._health(scope, send)
            return
        await self.app(scope, receive, send)

    async def _health(self, scope: Scope, send: Send) -> None:
        t0 = time.perf_counter()
        rid = origin = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value
            elif name == b"origin":
                origin = value
        headers = list(_BASE_HEADERS)
        headers.append((b"x-request-id", rid or uuid.uuid4().hex.encode()))
        origins = self.rt.settings.cors_origins
        if "*" in origins:
            headers.append((b"access-control-allow-origin", b"*"))
        elif origin is not None and origin.decode("latin-1") in origins:
            headers.append((b"access-control-allow-origin", origin))
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else HEALTH_BODY
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.rt.metrics.request("/health", scope["method"], 200, time.perf_counter() - t0)

    def __getattr__(self, name: str) -> Any:
        # Tests and tools look at the Quart app's attributes (url_map ...) through us.
        return getattr(self.app, name)
