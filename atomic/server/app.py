"""The Quart-Trio application: the routes of the contract (``shared/API.md``).

Cross-cutting rules live in the request hooks, not in each route: the request id, CORS,
API keys, the body size limit and the mapping of every :class:`AtomicError` (and every
HTTP error Quart raises) to the contract's error body.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .. import __version__, errors, logs
from ..pipeline import request as reqs
from ..pipeline.job import State
from ..pipeline.languages import supported
from .runtime import Runtime

log = logging.getLogger("atomic.server")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "queue_full",
    500: "internal_error",
    503: "unavailable",
}

JOB_STATES = {s.value for s in State}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status=status, headers=headers, content_type="application/json")


def error_parts(exc: errors.AtomicError) -> tuple[int, bytes, dict[str, str]]:
    """The contract's error answer for ``exc``: status, body, extra headers."""
    headers = {}
    if isinstance(exc, errors.QueueFull):
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.499)))
    if isinstance(exc, errors.PayloadTooLarge):
        headers["Connection"] = "close"  # the unread body must not be taken for the next request
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="atomic"'
    return exc.status, _json.encode({"error": exc.to_dict()}), headers


def error_response(exc: errors.AtomicError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status=status, headers=headers, content_type="application/json")


async def json_body() -> Any:
    """The request's JSON body, with the contract's 413 / 415 / 400 errors."""
    ctype = (request.mimetype or "").lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise errors.UnsupportedMediaType(
            f"the body must be application/json (got {request.mimetype or 'no content type'})"
        )
    return decode_json(await request.get_data(cache=False))


def decode_json(data: bytes | str) -> Any:
    """A request body as JSON, or the contract's 400 ``invalid_json``."""
    if not data:
        raise errors.InvalidJSON("the request body is empty; a JSON object is required")
    try:
        return _decode.decode(data)
    except msgspec.DecodeError as exc:
        raise errors.InvalidJSON(f"the request body is not valid JSON: {exc}") from None


async def accept_generate(rt: Runtime, body: Any, wait: bool) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /api/generate after the body is decoded: (status, job document, headers).

    Shared by the Quart route and the ASGI fast path, so both answer alike.
    """
    req = reqs.parse_generate(body, supported=supported(rt.sandbox.languages()), wait=wait)
    if wait:
        req["wait"] = True
    rt.sandbox.resolve_limits(req["limits"] or None)  # 422 now, not a failed job later
    job = await rt.manager.submit(req)
    headers = {"Location": f"/api/jobs/{job.id}"}
    if req["wait"]:
        await job.finished.wait()
        return 200, job.document(), headers
    return 202, job.take_accepted(), headers


def bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    low = raw.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no", ""):
        return False
    raise errors.ValidationError(name, "expected true or false")


def create_app(rt: Runtime) -> QuartTrio:
    settings = rt.settings
    app = QuartTrio("atomic")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.config["JSON_SORT_KEYS"] = False
    app.atomic = rt  # type: ignore[attr-defined]

    def languages() -> list[str]:
        return supported(rt.sandbox.languages())

    # --- hooks ---------------------------------------------------------------------------
    def _authorized(headers: Any, token: str | None = None) -> bool:
        """A configured key in ``Authorization: Bearer``, or (WebSocket) in ``?token=``."""
        keys = rt.settings.api_keys  # read per request: SIGHUP may change them
        if not keys:
            return True
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip() in keys:
            return True
        return token is not None and token in keys

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
        if request.path != "/health" and not _authorized(request.headers):
            return error_response(errors.Unauthorized("a valid API key is required: Authorization: Bearer <key>"))
        return None

    @app.after_request
    async def _after(resp: Response) -> Response:
        rid = getattr(g, "request_id", None) or logs.new_request_id()
        resp.headers["X-Request-ID"] = rid
        origin = request.headers.get("Origin")
        origins = rt.settings.cors_origins
        if "*" in origins:
            resp.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = (
                request.headers.get("Access-Control-Request-Headers") or "Authorization, Content-Type, X-Request-ID"
            )
            resp.headers["Access-Control-Max-Age"] = "600"
        resp.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Location, Retry-After"
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
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        messages = {
            404: f"no route matches {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than {settings.max_body_bytes} bytes",
        }
        err = errors.AtomicError(messages.get(status, exc.description or code), code=code)
        err.status = status
        return error_response(err)

    @app.errorhandler(Exception)
    async def _bug(exc: Exception) -> Response:
        log.exception("request %s: unexpected error", getattr(g, "request_id", "-"))
        return error_response(errors.AtomicError("an internal error occurred; see the server log"))

    # --- service -------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/api/status")
    async def status() -> Response:
        return json_response(rt.status(languages()))

    @app.get("/api/metrics")
    async def metrics_json() -> Response:
        return json_response(rt.metrics.snapshot())

    @app.get("/metrics")
    async def metrics_prom() -> Response:
        return Response(rt.metrics.prometheus(), content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/openapi.json")
    async def openapi() -> Response:
        from .openapi import document

        return json_response(document(__version__))

    # --- jobs ----------------------------------------------------------------------------
    @app.post("/api/generate")
    async def generate() -> Response:
        body = await json_body()
        status, doc, headers = await accept_generate(rt, body, bool(bool_arg("wait")))
        return json_response(doc, status, headers)

    @app.get("/api/jobs")
    async def list_jobs() -> Response:
        state = request.args.get("state")
        if state is not None:
            state = state.upper()
            if state not in JOB_STATES:
                raise errors.ValidationError("state", "expected one of " + ", ".join(sorted(JOB_STATES)))
        raw_limit = request.args.get("limit", "50")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise errors.ValidationError("limit", "expected a whole number 1..500") from None
        if not 1 <= limit <= 500:
            raise errors.ValidationError("limit", "expected a whole number 1..500")
        jobs, nxt = await rt.manager.list(state, limit, request.args.get("cursor") or None)
        return json_response({"jobs": jobs, "next": nxt})

    @app.get("/api/jobs/<job_id>")
    async def get_job(job_id: str) -> Response:
        return json_response(await rt.manager.get(job_id))

    @app.delete("/api/jobs/<job_id>")
    async def cancel_job(job_id: str) -> Response:
        return json_response(await rt.manager.cancel(job_id))

    @app.get("/api/jobs/<job_id>/artifact")
    async def artifact(job_id: str) -> Response:
        fmt = request.args.get("format", "zip")
        if fmt not in reqs.EXPORT_FORMATS:
            raise errors.ValidationError("format", "expected zip, tar or git")
        await rt.manager.get(job_id)  # 404 job_not_found first
        path = rt.artifacts.path(job_id, fmt)
        if path is None:
            raise errors.ArtifactNotFound(f"job {job_id} has no {fmt} artifact (yet)")
        data = await trio.Path(path).read_bytes()
        names = {"zip": ("zip", "application/zip"), "tar": ("tar.gz", "application/gzip"),
                 "git": ("git.tar.gz", "application/gzip")}
        ext, media = names[fmt]
        return Response(
            data,
            content_type=media,
            headers={"Content-Disposition": f'attachment; filename="atomic-{job_id}.{ext}"'},
        )

    # --- execute -------------------------------------------------------------------------
    def _spec(run: dict[str, Any]) -> Any:
        from ..sandbox import Case, RunSpec

        tests = run["tests"]
        return RunSpec(
            files=run["files"], command=run["command"], stdin=run["stdin"],
            limits=rt.sandbox.resolve_limits(run["limits"] or None),
            language=run["language"], entrypoint=run["entrypoint"], args=tuple(run["args"]),
            tests=None if tests is None else tuple(
                Case(name=t["name"], stdin=t["stdin"], args=None if t["args"] is None else tuple(t["args"]),
                     expected_stdout=t["expected_stdout"], expected_exit_code=t["expected_exit_code"])
                for t in tests),
            compare=run["compare"],
        )

    @app.post("/api/execute")
    async def execute() -> Response:
        body = await json_body()
        run = reqs.parse_execute(body, supported=languages(), output_limit=rt.settings.output_limit_bytes)
        result = await rt.manager.execute(_spec(run), run["priority"])
        return json_response(result.to_dict())

    @app.post("/api/execute/batch")
    async def execute_batch() -> Response:
        body = await json_body()
        runs = reqs.parse_batch(body, supported=languages(), output_limit=rt.settings.output_limit_bytes)
        specs = []
        for i, run in enumerate(runs):
            try:
                specs.append(_spec(run))
            except errors.ValidationError as exc:
                raise errors.ValidationError(f"runs[{i}].{exc.field}", exc.message.split(": ", 1)[1]) from None
        priority = max((run["priority"] for run in runs), key=reqs.PRIORITIES.index)
        results = await rt.manager.execute_batch(specs, priority)
        return json_response({"results": [
            {"error": r.to_dict()} if isinstance(r, errors.AtomicError) else r.to_dict() for r in results
        ]})

    from .ws import register_websocket

    register_websocket(app, rt, _authorized)
    return app
