"""What the Quart app and the ASGI fast paths share: JSON encoding, the contract's error
answers, the CORS and ``X-Request-ID`` headers, API keys, reading a JSON body.

Written once here so the two ways a request is answered (:mod:`.app` and :mod:`.fast`)
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec
from quart import Response, current_app, request

from .. import errors, logs
from ..contract import ErrorBody, ErrorInfo, decode
from ..ratelimit import retry_after_header

if TYPE_CHECKING:
    from .state import Runtime

T = TypeVar("T")

encode = msgspec.json.Encoder().encode

#: Response headers a browser script may read.
EXPOSE = "X-Request-ID, Location, Retry-After"
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"


def runtime() -> Runtime:
    """The running server's state, from inside a route."""
    return cast("Runtime", current_app.extensions["atomic"])


# --- answers ---------------------------------------------------------------------------


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status=status, headers=headers, content_type="application/json")


def error_body(exc: errors.AtomicError) -> bytes:
    return encode(ErrorBody(error=ErrorInfo(code=exc.code, message=exc.message)))


def error_parts(exc: errors.AtomicError) -> tuple[int, bytes, dict[str, str]]:
    """The contract's error answer for ``exc``: status, body, extra headers."""
    headers = {}
    if isinstance(exc, errors.QueueFull):
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.499)))
    elif isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = retry_after_header(exc.retry_after)
    if isinstance(exc, errors.PayloadTooLarge):
        headers["Connection"] = "close"  # the unread body must not be taken for the next request
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="atomic"'
    if isinstance(exc, errors.MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allow)  # RFC 9110: a 405 says what is allowed
    if isinstance(exc, errors.UpgradeRequired):
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
    return exc.status, error_body(exc), headers


def error_response(exc: errors.AtomicError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status=status, headers=headers, content_type="application/json")


# --- headers every answer carries ----------------------------------------------------------


def cors_headers(origin: bytes | None, origins: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """``Access-Control-Allow-Origin`` (and ``Vary``) for a request from ``origin``."""
    if "*" in origins:
        return [(b"access-control-allow-origin", b"*")]
    if origin is not None and origin.decode("latin-1") in origins:
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    return []


def contract_headers(headers: Iterable[tuple[bytes, bytes]], origins: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """The request id (the client's, echoed, or a new one), CORS, and the exposed headers:
    what every answer carries, from the request's raw (lower-case) headers."""
    rid = origin = None
    for name, value in headers:
        if name == b"x-request-id":
            rid = value
        elif name == b"origin":
            origin = value
    out = [(b"access-control-expose-headers", EXPOSE.encode()),
           (b"x-request-id", rid or logs.new_request_id().encode())]
    out += cors_headers(origin, origins)
    return out


def authorized(authorization: str | None, token: str | None, keys: Sequence[str]) -> bool:
    """A configured key in ``Authorization: Bearer`` or (WebSocket) ``?token=``; no keys: open."""
    if not keys:
        return True
    auth = authorization or ""
    if auth[:7].lower() == "bearer " and auth[7:].strip() in keys:
        return True
    return token is not None and token in keys


def client_key(scope: dict[str, Any], keys: Sequence[str]) -> str:
    """Whose request this is, for the rate limit: its API key when it carries a configured
    one (``Authorization: Bearer``, or a WebSocket's ``?token=``), else its address."""
    if keys:
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
                if auth[:7].lower() == "bearer ":
                    token = auth[7:].strip()
                break
        if token is None and scope["type"] == "websocket" and b"token=" in scope["query_string"]:
            from urllib.parse import parse_qs

            token = (parse_qs(scope["query_string"].decode("latin-1")).get("token") or [None])[0]
        if token is not None and token in keys:
            return "key:" + token
    client = scope.get("client")
    return "addr:" + (str(client[0]) if client else "-")


def is_json(content_type: str | None) -> bool:
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


# --- reading a request ----------------------------------------------------------------------


async def read_body(type_: type[T]) -> T:
    """The request's JSON body as ``type_``, with the contract's 415 / 400 / 422."""
    if not is_json(request.mimetype):
        raise errors.UnsupportedMediaType(
            f"the body must be application/json (got {request.mimetype or 'no content type'})"
        )
    return decode(await request.get_data(cache=False), type_)


def bool_arg(name: str) -> bool | None:
    """A boolean query parameter: true/false (also 1/0, yes/no); absent: None."""
    raw = request.args.get(name)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise errors.ValidationError(name, "expected true or false")


__all__ = [
    "ALLOW_HEADERS",
    "ALLOW_METHODS",
    "EXPOSE",
    "authorized",
    "bool_arg",
    "client_key",
    "contract_headers",
    "cors_headers",
    "encode",
    "error_body",
    "error_parts",
    "error_response",
    "is_json",
    "json_response",
    "read_body",
    "runtime",
]
