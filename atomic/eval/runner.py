"""Drive a task set through a server: one generate job per task, ``samples = K``.

Each task is submitted with ``POST /api/generate`` (429 ``queue_full`` waits its
``Retry-After``), followed over the WebSocket (``{"job_id": ID}``, the job's ``done``;
polling ``GET /api/jobs/{id}`` when the stream breaks), and its finished document turned
into one line of ``results.jsonl``. At most ``concurrency`` tasks are in flight. A task's
failure (a 4xx, a server error, a lost connection, a job that takes too long) is that
task's record, never the run's end. When the run is cancelled (Ctrl-C, SIGTERM) every job
in flight is cancelled on the server (``DELETE``) before the run returns.
"""

from __future__ import annotations

import datetime
import json
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ..errors import AtomicError
from .formats import Task
from .results import ResultsFile

TERMINAL = frozenset({"COMPLETE", "FAILED", "CANCELLED"})
DEFAULT_TEMPERATURE_SAMPLED = 0.8  # the issue's: sampling temperature when K > 1


@dataclass(frozen=True)
class EvalOptions:
    url: str = "http://127.0.0.1:8080"
    samples: int = 1
    concurrency: int = 4
    provider: str | None = None
    model: str | None = None
    repairs: int = 0
    temperature: float | None = None
    seed: int | None = None
    priority: str = "normal"
    api_key: str | None = None
    ssl_context: ssl.SSLContext | None = None  # https:// (client.connection builds it)
    job_timeout_s: float = 3600.0
    submit_retries: int = 3
    retry_backoff_s: float = 1.0  # first wait after a 5xx or lost connection; doubles, at most 30 s
    cleanup_timeout_s: float = 10.0
    poll_interval_s: float = 1.0


@dataclass
class RunState:
    """What is happening now: the progress display and the Ctrl-C cleanup read it."""

    total: int
    done: int = 0
    in_flight: dict[str, str | None] = field(default_factory=dict)  # task_id -> job id once known
    cancelled_jobs: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_body(task: Task, opts: EvalOptions) -> dict[str, Any]:
    """The generate body for one task, in the contract's fields."""
    body: dict[str, Any] = {
        "prompt": task.prompt,
        "language": task.language,
        "priority": opts.priority,
        "samples": opts.samples,
        "judge_all": True,
        "repairs": opts.repairs,
        "execute": True,
    }
    if task.tests is not None:
        body["tests"] = [dict(c) for c in task.tests]
    if task.test_code is not None:
        body["test_code"] = task.test_code
    if opts.provider:
        body["provider"] = opts.provider
    if opts.model:
        body["model"] = opts.model
    temperature = opts.temperature
    if temperature is None and opts.samples > 1:
        temperature = DEFAULT_TEMPERATURE_SAMPLED
    if temperature is not None:
        body["temperature"] = temperature
    if opts.seed is not None:
        body["seed"] = opts.seed
    return body


def ws_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/stream", "", ""))


def _error_of(resp: httpx.Response) -> dict[str, str]:
    try:
        err = resp.json()["error"]
        return {"code": str(err["code"]), "message": str(err["message"])}
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{resp.status_code}", "message": resp.text[:300] or resp.reason_phrase}


def _retry_after(resp: httpx.Response, default: float) -> float:
    raw = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return default


def candidates_of(job: dict[str, Any], samples: int) -> list[dict[str, Any]] | None:
    """The job's judged candidates, or None when the document carries none.

    A server that predates ``samples`` but reports a top-level ``verdict`` still gives
    one candidate for K = 1.
    """
    cands = job.get("candidates")
    if isinstance(cands, list) and cands:
        return [
            {
                "index": c.get("index", i),
                "verdict": c.get("verdict"),
                "passed": c.get("passed"),
                "total": c.get("total"),
                "attempts": c.get("attempts"),
            }
            for i, c in enumerate(cands)
            if isinstance(c, dict)
        ]
    if samples == 1 and job.get("verdict"):
        return [{"index": 0, "verdict": job["verdict"], "passed": job.get("passed"),
                 "total": job.get("total"), "attempts": None}]
    return None


def record_of(task: Task, job: dict[str, Any] | None, *, opts: EvalOptions, submitted_at: str,
              wall_ms: float, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """One line of results.jsonl."""
    samples = candidates_of(job, opts.samples) if job is not None else None
    if job is not None and samples is None and error is None:
        error = {"code": "no_candidates",
                 "message": "the finished job carries no candidates: the server does not run tested generation"}
    if job is not None and job.get("state") == "CANCELLED" and error is None:
        error = {"code": "cancelled", "message": "the job was cancelled on the server"}
    rec: dict[str, Any] = {
        "task_id": task.task_id,
        "job_id": job.get("id") if job else None,
        "state": job.get("state") if job else None,
        "n": len(samples) if samples else 0,
        "c": sum(1 for s in samples if s["verdict"] == "accepted") if samples else 0,
        "samples": samples or [],
        "chosen": job.get("chosen") if job else None,
        "error": error if error is not None else (job.get("error") if job and not samples else None),
        "job_error": job.get("error") if job else None,
        "submitted_at": submitted_at,
        "finished_at": now_iso(),
        "duration_ms": round(wall_ms, 1),
        "stages": {s["name"]: s.get("duration_ms") for s in (job.get("stages") or []) if isinstance(s, dict)}
        if job else {},
        "usage": job.get("usage") if job else None,
    }
    return rec


class Runner:
    """One run: its HTTP client, its results file, its state. See the module docstring."""

    def __init__(self, opts: EvalOptions, results: ResultsFile, state: RunState,
                 on_record: Callable[[dict[str, Any]], None] = lambda rec: None) -> None:
        self.opts = opts
        self.results = results
        self.state = state
        self.on_record = on_record
        self._headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
        self._ssl = opts.ssl_context
        self.client = httpx.AsyncClient(
            base_url=opts.url.rstrip("/"), headers=self._headers,
            verify=self._ssl if self._ssl is not None else True,
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run(self, tasks: list[Task]) -> None:
        """Every task, at most ``concurrency`` at once; returns when all are recorded."""
        limiter = trio.CapacityLimiter(self.opts.concurrency)
        async with trio.open_nursery() as nursery:
            for task in tasks:
                await limiter.acquire_on_behalf_of(task.task_id)
                nursery.start_soon(self._one, task, limiter)

    async def _one(self, task: Task, limiter: trio.CapacityLimiter) -> None:
        try:
            self.state.in_flight[task.task_id] = None
            rec = await self.run_task(task)
            self.results.append(rec)
            self.state.done += 1
            self.on_record(rec)
        finally:
            self.state.in_flight.pop(task.task_id, None)
            limiter.release_on_behalf_of(task.task_id)

    async def run_task(self, task: Task) -> dict[str, Any]:
        """Submit, follow, record. Cancellation deletes the job on the server first."""
        submitted_at = now_iso()
        t0 = time.monotonic()
        job_id: str | None = None
        finished = False
        error: dict[str, Any]
        try:
            try:
                job_id = await self.submit(task)
                self.state.in_flight[task.task_id] = job_id
                with trio.fail_after(self.opts.job_timeout_s):
                    job = await self.follow(job_id)
                finished = True
                return record_of(task, job, opts=self.opts, submitted_at=submitted_at,
                                 wall_ms=(time.monotonic() - t0) * 1000)
            except AtomicError as exc:
                error = {"code": exc.code, "message": exc.message}
            except trio.TooSlowError:
                error = {"code": "job_timeout", "message": f"the job did not end within {self.opts.job_timeout_s:g} s"}
            except Exception as exc:  # noqa: BLE001 - one task's surprise is its record, not the run's end
                error = {"code": "client_error", "message": f"{type(exc).__name__}: {exc}"}
            rec = record_of(task, None, opts=self.opts, submitted_at=submitted_at,
                            wall_ms=(time.monotonic() - t0) * 1000, error=error)
            rec["job_id"] = job_id
            return rec
        finally:
            if job_id is not None and not finished:
                with trio.move_on_after(self.opts.cleanup_timeout_s, shield=True):
                    await self.cancel(job_id)

    async def submit(self, task: Task) -> str:
        """POST the job; waits out 429 ``queue_full``; retries 5xx and lost connections."""
        body = build_body(task, self.opts)
        failures = 0
        while True:
            try:
                resp = await self.client.post("/api/generate", json=body)
            except httpx.HTTPError as exc:
                failures += 1
                if failures > self.opts.submit_retries:
                    raise AtomicError(f"cannot reach {self.opts.url}: {exc}", code="unreachable") from None
                await trio.sleep(self._backoff(failures))
                continue
            if resp.status_code in (200, 201, 202):
                doc = resp.json()
                return str(doc["id"])
            err = _error_of(resp)
            if resp.status_code == 429:
                await trio.sleep(_retry_after(resp, 1.0))  # the queue is full: not a failure
                continue
            if resp.status_code >= 500:
                failures += 1
                if failures <= self.opts.submit_retries:
                    await trio.sleep(_retry_after(resp, self._backoff(failures)))
                    continue
            raise AtomicError(f"HTTP {resp.status_code}: {err['message']}", code=err["code"])

    def _backoff(self, failures: int) -> float:
        return min(30.0, self.opts.retry_backoff_s * 2.0 ** (failures - 1))

    async def follow(self, job_id: str) -> dict[str, Any]:
        """The finished job document: from the WebSocket's ``done``, else by polling."""
        headers = [(k.encode(), v.encode()) for k, v in self._headers.items()]
        for _ in range(3):
            try:
                async with open_websocket_url(ws_url(self.opts.url), ssl_context=self._ssl,
                                              extra_headers=headers) as ws:
                    await ws.send_message(json.dumps({"job_id": job_id}))
                    while True:
                        msg = json.loads(await ws.get_message())
                        kind = msg.get("type")
                        if kind == "done":
                            return dict(msg["job"])
                        if kind == "error":
                            err = msg.get("error") or {}
                            raise AtomicError(str(err.get("message", "stream error")),
                                              code=str(err.get("code", "stream_error")))
            except (ConnectionClosed, HandshakeError, OSError, ValueError, trio.BrokenResourceError):
                await trio.sleep(0.5)  # the stream broke: follow again (a finished job answers at once)
        return await self.poll(job_id)

    async def poll(self, job_id: str) -> dict[str, Any]:
        delay = self.opts.poll_interval_s
        while True:
            try:
                resp = await self.client.get(f"/api/jobs/{job_id}")
            except httpx.HTTPError:
                await trio.sleep(delay)
                continue
            if resp.status_code == 200:
                doc = resp.json()
                if doc.get("state") in TERMINAL:
                    return dict(doc)
            elif resp.status_code < 500:
                err = _error_of(resp)
                raise AtomicError(f"HTTP {resp.status_code}: {err['message']}", code=err["code"])
            await trio.sleep(delay)

    async def cancel(self, job_id: str) -> None:
        """DELETE the job (a job already finished answers 409: fine)."""
        try:
            resp = await self.client.delete(f"/api/jobs/{job_id}")
        except httpx.HTTPError:
            return
        if resp.status_code in (200, 409):
            self.state.cancelled_jobs.append(job_id)


def eta_s(state: RunState) -> float:
    elapsed = time.monotonic() - state.started
    if state.done == 0:
        return math.inf
    return elapsed / state.done * (state.total - state.done)
