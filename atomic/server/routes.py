"""The contract's HTTP routes, as one Blueprint of plain functions.

Each route decodes its input into a contract type (:mod:`atomic.contract`), asks the
job manager or the sandbox, and answers with a contract document. Cross-cutting rules
(request id, CORS, API keys, body size, errors) are the app's hooks (:mod:`.app`).
"""

from __future__ import annotations

import trio
from quart import Blueprint, Response, request

from .. import __version__, errors, tracing
from ..contract import (
    EXPORT_FORMATS,
    JOB_STATES,
    PRIORITIES,
    BatchRequest,
    ExecuteRequest,
    GenerateRequest,
    JobDocument,
    JobPage,
    LanguageList,
    PreparedRun,
    prepare_run,
)
from ..contract.documents import BatchError, ErrorInfo
from ..sandbox.run import RunSpec, case_of
from ..store.artifacts import FORMATS
from .http import bool_arg, encode, json_response, read_body, runtime
from .openapi import document
from .state import Runtime

routes = Blueprint("atomic", __name__)


# --- service -----------------------------------------------------------------------------


@routes.get("/health")
async def health() -> Response:
    return json_response({"status": "ok"})


@routes.get("/api/status")
async def status() -> Response:
    return json_response(runtime().status())


@routes.get("/api/languages")
async def languages() -> Response:
    return json_response(LanguageList(languages=runtime().sandbox.languages_info()))


@routes.get("/api/metrics")
async def metrics_json() -> Response:
    return json_response(runtime().metrics.snapshot())


@routes.get("/metrics")
async def metrics_prom() -> Response:
    return Response(runtime().metrics.prometheus(), content_type="text/plain; version=0.0.4; charset=utf-8")


@routes.get("/openapi.json")
async def openapi() -> Response:
    return json_response(document(__version__, runtime().languages()))


# --- jobs --------------------------------------------------------------------------------


async def accept_generate(rt: Runtime, req: GenerateRequest, wait: bool, traceparent: str | bytes | None = None,
                          ) -> tuple[int, JobDocument, dict[str, str]]:
    """POST /api/generate once the body is decoded: (status, job document, headers).

    Shared by this route and the ASGI fast path, so both answer alike. ``traceparent``:
    the request's W3C header, read only when tracing is on.
    """
    rt.check_job(req)  # 422 now, not a failed job later
    wait = wait or req.wait is True
    job = await rt.manager.submit(req.spec(), traceparent=traceparent)
    headers = {"Location": f"/api/jobs/{job.id}"}
    if wait:
        await job.finished.wait()
        return 200, job.document(), headers
    return 202, job.take_accepted(), headers


@routes.post("/api/generate")
async def generate() -> Response:
    req = await read_body(GenerateRequest)
    traceparent = request.headers.get("traceparent") if tracing.enabled() else None
    status, doc, headers = await accept_generate(runtime(), req, bool(bool_arg("wait")), traceparent)
    return json_response(doc, status, headers)


@routes.get("/api/jobs")
async def list_jobs() -> Response:
    state = request.args.get("state")
    if state is not None and state not in JOB_STATES:
        raise errors.ValidationError("state", "expected one of " + ", ".join(JOB_STATES))
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        raise errors.ValidationError("limit", "expected a whole number 1..500")
    cursor = request.args.get("cursor")
    jobs, nxt = await runtime().manager.page(state, int(raw_limit), cursor)
    return json_response(JobPage(jobs=jobs, next=nxt))


@routes.get("/api/jobs/<job_id>")
async def get_job(job_id: str) -> Response:
    return json_response(await runtime().manager.get(job_id))


@routes.delete("/api/jobs/<job_id>")
async def cancel_job(job_id: str) -> Response:
    return json_response(await runtime().manager.cancel(job_id))


@routes.get("/api/jobs/<job_id>/artifact")
async def artifact(job_id: str) -> Response:
    rt = runtime()
    fmt = request.args.get("format", "zip")
    if fmt not in EXPORT_FORMATS:
        raise errors.ValidationError("format", "expected zip, tar or git")
    await rt.manager.get(job_id)  # 404 job_not_found first
    path = rt.artifacts.path(job_id, fmt)
    if path is None:
        raise errors.ArtifactNotFound(f"job {job_id} has no {fmt} artifact (yet)")
    data = await trio.Path(path).read_bytes()
    kind = FORMATS[fmt]
    return Response(data, content_type=kind.media_type,
                    headers={"Content-Disposition": f'attachment; filename="atomic-{job_id}{kind.suffix}"'})


# --- execute -----------------------------------------------------------------------------


def _prepare(rt: Runtime, body: ExecuteRequest, where: str = "") -> PreparedRun:
    """The checks a schema cannot state, and the limits (422 before anything runs)."""
    run = prepare_run(body, rt.sandbox.languages(), where, rt.settings.output_limit_bytes)
    try:
        rt.sandbox.resolve_limits(run.limits)
    except errors.ValidationError as exc:
        raise errors.ValidationError(where + exc.field, exc.message.split(": ", 1)[1]) from None
    return run


def _spec(rt: Runtime, run: PreparedRun) -> RunSpec:
    return RunSpec(
        files=run.files, command=run.command, stdin=run.stdin, limits=rt.sandbox.resolve_limits(run.limits),
        language=run.language, entrypoint=run.entrypoint, args=run.args,
        tests=None if run.tests is None else tuple(case_of(t) for t in run.tests), compare=run.compare,
    )


@routes.post("/api/execute")
async def execute() -> Response:
    rt = runtime()
    run = _prepare(rt, await read_body(ExecuteRequest))
    return json_response(await rt.manager.execute(_spec(rt, run), run.priority))


@routes.post("/api/execute/batch")
async def execute_batch() -> Response:
    rt = runtime()
    body = await read_body(BatchRequest)
    runs = [_prepare(rt, r, f"runs[{i}].") for i, r in enumerate(body.runs)]
    # One queue item for the whole batch, at its most urgent run's priority.
    priority = max((run.priority for run in runs), key=PRIORITIES.index)
    results = await rt.manager.execute_batch([_spec(rt, run) for run in runs], priority)
    return json_response({"results": [
        BatchError(error=ErrorInfo(code=r.code, message=r.message)) if isinstance(r, errors.AtomicError) else r
        for r in results
    ]})


# --- WebSocket route, asked for without the upgrade ------------------------------------------


@routes.get("/ws/stream")
async def stream_without_upgrade() -> Response:
    raise errors.UpgradeRequired("/ws/stream is a WebSocket: send the request with Upgrade: websocket")


__all__ = ["accept_generate", "encode", "routes"]
