"""The Quart-Trio application: the contract's routes (:mod:`.routes`, :mod:`.ws`) and the
rules every request follows.

Cross-cutting rules live in the request hooks, not in each route: the request id, CORS,
API keys, the body size limit and the mapping of every :class:`AtomicError` (and every
HTTP error Quart raises) to the contract's error body.
"""

from __future__ import annotations

import logging
import time

from quart import Response, g, request
from quart_trio import QuartTrio
import werkzeug.exceptions
from werkzeug.exceptions import HTTPException

from .. import errors, logs
from .http import ALLOW_HEADERS, ALLOW_METHODS, authorized, contract_headers, error_response
from .routes import routes
from .state import Runtime
from .ws import stream_routes
from .web import is_public, register_web

log = logging.getLogger("atomic.server")


def _http_error(exc: HTTPException, settings_max_body: int) -> errors.AtomicError:
    """A werkzeug HTTP error (raised by Quart's routing) as the contract's error."""
    status = exc.code or 500
    if status == 404:
        return errors.NotFound(f"no route matches {request.path}")
    if isinstance(exc, werkzeug.exceptions.MethodNotAllowed):
        allow = sorted(set(exc.valid_methods or ()) | {"OPTIONS"})
        return errors.MethodNotAllowed(f"{request.method} is not allowed on {request.path}", allow=allow)
    if status == 413:
        return errors.PayloadTooLarge(f"the request body is larger than {settings_max_body} bytes")
    if status == 400:
        return errors.InvalidJSON("the request could not be read")
    err = errors.AtomicError(f"the request failed with HTTP {status}", code="http_error")
    err.status = status
    return err


def create_app(rt: Runtime) -> QuartTrio:
    settings = rt.settings
    app = QuartTrio("atomic")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.extensions["atomic"] = rt

    @app.before_request
    async def _before() -> Response | None:
        g.t0 = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID") or logs.new_request_id()
        logs.request_id.set(g.request_id)  # every log line of this request carries it
        if request.method == "OPTIONS":
            return None
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return error_response(errors.PayloadTooLarge(
                f"the request body is larger than {settings.max_body_bytes} bytes"))
        keys = rt.settings.api_keys  # read per request: SIGHUP may change them
        public = request.path == "/health" or is_public(request.path)
        if not public and not authorized(request.headers.get("Authorization"), None, keys):
            return error_response(errors.Unauthorized("a valid API key is required: Authorization: Bearer <key>"))
        return None

    @app.after_request
    async def _after(resp: Response) -> Response:
        raw = [(b"x-request-id", g.request_id.encode())] if getattr(g, "request_id", None) else []
        origin = request.headers.get("Origin")
        if origin is not None:
            raw.append((b"origin", origin.encode("latin-1")))
        for name, value in contract_headers(raw, rt.settings.cors_origins):
            resp.headers[name.decode()] = value.decode("latin-1")
        if request.method == "OPTIONS":
            resp.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            resp.headers["Access-Control-Allow-Headers"] = (
                request.headers.get("Access-Control-Request-Headers") or ALLOW_HEADERS
            )
            resp.headers["Access-Control-Max-Age"] = "600"
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        t0 = getattr(g, "t0", None)
        if t0 is not None:
            rt.metrics.request(rule, request.method, resp.status_code, time.perf_counter() - t0)
        return resp

    @app.errorhandler(errors.AtomicError)
    async def _atomic_error(exc: errors.AtomicError) -> Response:
        if exc.status >= 500 and not isinstance(exc, (errors.ShuttingDown, errors.SandboxUnavailable)):
            log.warning("request %s failed: %s", getattr(g, "request_id", "-"), exc)
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def _werkzeug_error(exc: HTTPException) -> Response:
        return error_response(_http_error(exc, settings.max_body_bytes))

    @app.errorhandler(Exception)
    async def _bug(exc: Exception) -> Response:
        log.exception("request %s: unexpected error", getattr(g, "request_id", "-"))
        return error_response(errors.AtomicError("an internal error occurred; see the server log"))

    app.register_blueprint(routes)
    app.register_blueprint(stream_routes)
    register_web(app)  # the page at / and its files (atomic/server/web.py)
    return app


__all__ = ["create_app"]
