"""A small server that speaks the contract's tested generation (``samples``, ``judge_all``,
``candidates``) for ``atomic eval``'s tests, until Atomic's own server does.

It is real HTTP and WebSocket over 127.0.0.1 (Quart-Trio on Hypercorn, as Atomic's
server is), so the runner under test is the real client code. What each job does is
scripted by its prompt: ``Script`` maps a prompt to the verdicts of its samples, a delay,
or a failure. Every request it gets is kept for the tests to check.

Move these tests to the real server (tests/server's ``make_server``) once tested
generation lands: see tests/eval/test_runner.py.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request, websocket
from quart_trio import QuartTrio

TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}
GENERATE_FIELDS = {"prompt", "language", "priority", "provider", "model", "execute", "limits", "export", "wait",
                   "tests", "test_code", "samples", "repairs", "temperature", "seed", "judge_all"}


@dataclass
class Outcome:
    verdicts: list[str] | None = None  # per sample; None: every sample "accepted"
    delay_s: float = 0.0  # how long the job runs
    hang: bool = False  # runs until cancelled
    status: int | None = None  # answer the POST with this error status instead
    no_candidates: bool = False  # a document without candidates (today's server)


@dataclass
class ContractServer:
    script: dict[str, Outcome] = field(default_factory=dict)
    queue_full_first: int = 0  # answer this many POSTs with 429 queue_full first
    retry_after_s: float = 0.2
    url: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rejected_429: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _changed: dict[str, trio.Event] = field(default_factory=dict)

    def running(self) -> list[str]:
        return [i for i, j in self.jobs.items() if j["state"] not in TERMINAL]

    def _finish(self, job_id: str, state: str, **fields: Any) -> None:
        job = self.jobs[job_id]
        if job["state"] in TERMINAL:
            return
        job.update(state=state, progress=1.0, finished_at="2026-12-01T00:00:01Z", **fields)
        self._changed.pop(job_id, trio.Event()).set()

    async def _run_job(self, job_id: str, body: dict[str, Any], outcome: Outcome) -> None:
        self.jobs[job_id]["state"] = "GENERATING"
        if outcome.hang:
            await trio.sleep_forever()
        await trio.sleep(outcome.delay_s)
        k = body.get("samples", 1)
        verdicts = outcome.verdicts or ["accepted"] * k
        cands = [{"index": i, "verdict": v, "passed": 3 if v == "accepted" else 1, "total": 3, "attempts": 1}
                 for i, v in enumerate(verdicts[:k])]
        chosen = next((c["index"] for c in cands if c["verdict"] == "accepted"), 0)
        ok = any(c["verdict"] == "accepted" for c in cands)
        extra: dict[str, Any] = {} if outcome.no_candidates else {
            "candidates": cands, "chosen": chosen, "verdict": cands[chosen]["verdict"],
            "passed": cands[chosen]["passed"], "total": 3}
        self._finish(job_id, "COMPLETE" if ok else "FAILED",
                     error=None if ok else {"code": "tests_failed", "message": "no candidate passed",
                                            "stage": "EXECUTING"},
                     usage={"provider": "replay", "model": "replay-1", "prompt_tokens": 10,
                            "completion_tokens": 20, "total_tokens": 30},
                     stages=[{"name": "GENERATING", "started_at": "x", "finished_at": "y", "duration_ms": 5.0}],
                     **extra)

    def app(self, nursery: trio.Nursery) -> QuartTrio:
        app = QuartTrio(__name__)

        def error(status: int, code: str, message: str, **headers: str) -> Any:
            return {"error": {"code": code, "message": message}}, status, headers

        @app.post("/api/generate")
        async def generate() -> Any:
            body = await request.get_json(force=True)
            unknown = set(body) - GENERATE_FIELDS
            if unknown:
                return error(422, "validation_error", f"{sorted(unknown)[0]}: unknown field")
            samples = body.get("samples", 1)
            if not isinstance(samples, int) or not 1 <= samples <= 8:
                return error(422, "validation_error", "samples: expected 1..8")
            self.posts.append(body)
            if self.rejected_429 < self.queue_full_first:
                self.rejected_429 += 1
                return error(429, "queue_full", "the job queue is full", **{"Retry-After": str(self.retry_after_s)})
            outcome = self.script.get(body["prompt"], Outcome())
            if outcome.status is not None:
                return error(outcome.status, "internal_error" if outcome.status >= 500 else "validation_error",
                             "scripted failure")
            job_id = f"{next(self._ids):032x}"
            self.jobs[job_id] = {"id": job_id, "state": "QUEUED", "progress": 0.0, "request": body,
                                 "error": None, "stages": [], "usage": {}}
            nursery.start_soon(self._run_job, job_id, body, outcome)
            return self.jobs[job_id], 202, {"Location": f"/api/jobs/{job_id}"}

        @app.get("/api/jobs/<job_id>")
        async def get_job(job_id: str) -> Any:
            if job_id not in self.jobs:
                return error(404, "job_not_found", "no such job")
            return self.jobs[job_id]

        @app.delete("/api/jobs/<job_id>")
        async def delete_job(job_id: str) -> Any:
            if job_id not in self.jobs:
                return error(404, "job_not_found", "no such job")
            if self.jobs[job_id]["state"] in TERMINAL:
                return error(409, "job_finished", "the job has already finished")
            self.deleted.append(job_id)
            self._finish(job_id, "CANCELLED")
            return self.jobs[job_id]

        @app.websocket("/ws/stream")
        async def stream() -> None:
            first = json.loads(await websocket.receive())
            job_id = first["job_id"]
            seq = itertools.count(1)
            job = self.jobs[job_id]
            if job["state"] not in TERMINAL:
                await websocket.send(json.dumps({"type": "state", "state": job["state"], "progress": 0.5,
                                                 "job_id": job_id, "seq": next(seq)}))
                await self._changed.setdefault(job_id, trio.Event()).wait()
            await websocket.send(json.dumps({"type": "done", "job": self.jobs[job_id], "job_id": job_id,
                                             "seq": next(seq)}))
            await websocket.close(1000)

        return app

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self.app(nursery), config)
            self.url = binds[0]
            task_status.started(self.url)
