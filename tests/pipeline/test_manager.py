"""The job manager on virtual time: a real store (SQLite), queue, artifact store and agent
(the replay provider, served in-process over a Unix socket); no Docker. Jobs run with
``execute: false``, or against a sandbox stand-in typed to the Protocol where a test is
about the manager rather than the sandbox.

Virtual time and SQLite's worker threads meet here: the autojump clock jumps whenever
every task is blocked, and a task waiting for a thread is blocked, so a commit that
takes a few real milliseconds would let virtual time run on (and a run of 100 virtual
seconds end) meanwhile. :class:`FreezingLimiter` stops the clock while any store thread
works, so what happens at what virtual time does not depend on how fast the machine is.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from atomic import config, errors
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import serve_agent
from atomic.contract import JobDocument, JobSpec, StateEvent
from atomic.ipc.pool import AgentPool
from atomic.metrics import Metrics
from atomic.pipeline.job import EventBuffer, Job, State
from atomic.pipeline.manager import JobManager
from atomic.pipeline.services import Sandbox, Services
from atomic.queue import JobQueue
from atomic.sandbox import ExecutionResult, Limits, Ran, RunSpec, resolve_limits
from atomic.store import ArtifactStore, JobStore

FAR = 1e6  # a bound that is not under test


class FreezingLimiter:
    """A ``trio.CapacityLimiter`` for the store's threads that stops the autojump clock
    while a thread holds it (``to_thread.run_sync`` acquires it before the thread starts
    and releases it once its result is back in Trio)."""

    def __init__(self, inner: trio.CapacityLimiter, clock: trio.testing.MockClock) -> None:
        self.inner = inner
        self.clock = clock

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self.inner.acquire_on_behalf_of(borrower)
        self.clock.autojump_threshold = math.inf

    def release_on_behalf_of(self, borrower: object) -> None:
        self.inner.release_on_behalf_of(borrower)
        if not any(lim.borrowed_tokens for lim in FREEZING.get(self.clock, ())):
            self.clock.autojump_threshold = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


FREEZING: dict[trio.testing.MockClock, list[trio.CapacityLimiter]] = {}


def freeze_while_storing(store: JobStore, clock: trio.testing.MockClock) -> JobStore:
    inners = FREEZING.setdefault(clock, [])
    for name in ("_wlimiter", "_rlimiter"):
        inner = getattr(store, name)
        inners.append(inner)
        setattr(store, name, FreezingLimiter(inner, clock))
    return store


class SlowSandbox:
    """Runs nothing: each run takes ``run_s`` (virtual) seconds and exits 0. Fits the
    pipeline's :class:`~atomic.pipeline.services.Sandbox` Protocol."""

    def __init__(self, settings: config.Settings, run_s: float) -> None:
        self.settings = settings
        self.run_s = run_s
        self.runs = 0

    def status(self) -> dict[str, Any]:
        return {"available": True, "image": "stand-in", "warm": 0, "reason": None}

    def languages(self) -> list[str]:
        return []

    def image_for(self, language: str) -> str:
        return "stand-in"

    def image_id(self, language: str) -> str | None:
        return None

    def resolve_limits(self, user: dict[str, Any] | None) -> Limits:
        return resolve_limits(self.settings, user)

    def reconfigure(self, settings: config.Settings) -> None:
        self.settings = settings

    async def execute(self, spec: RunSpec, on_output: Any = None) -> ExecutionResult:
        self.runs += 1
        await trio.sleep(self.run_s)
        return ExecutionResult(exit_code=0, stdout="ok\n", stderr="", duration_ms=self.run_s * 1000,
                               termination="exited", truncated=False, verdict="accepted")

    async def execute_collecting(self, spec: RunSpec, on_output: Any = None) -> Ran:
        return Ran(await self.execute(spec, on_output))

    async def execute_batch(self, specs: list[RunSpec]) -> list[ExecutionResult | errors.AtomicError]:
        return [await self.execute(spec) for spec in specs]


class FailingFirstPut:
    """The real store, whose first ``put`` fails after a checkpoint (a commit that fails)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.failed = False

    async def put(self, doc: JobDocument) -> None:
        if not self.failed:
            self.failed = True
            # The commit is under way: other tasks run meanwhile. Trio runs the tasks that
            # are ready in a random order, so one checkpoint may not be enough for a task
            # woken before it; a few are (each lets every task ready before it run).
            for _ in range(5):
                await trio.sleep(0)
            raise errors.StoreError("the jobs database could not be written: disk I/O error")
        await self.store.put(doc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass
class World:
    manager: JobManager
    store: JobStore
    sandbox: SlowSandbox
    settings: config.Settings
    nursery: trio.Nursery


@asynccontextmanager
async def world(tmp_path: Path, clock: trio.testing.MockClock, *, text: str | None = None, rate: float = 0.0, run_s: float = 5.0,
                store_wrapper: Any = None, unfinished: list[JobDocument] = (), **overrides: Any,
                ) -> AsyncIterator[World]:
    sock_dir = tempfile.mkdtemp(prefix="atomic-m")  # Unix socket paths stay short
    settings = config.load(env={}, overrides={
        "data_dir": str(tmp_path / "data"), "ipc_socket": f"{sock_dir}/a.sock", "provider": "replay",
        "cleanup_timeout_s": FAR, "generate_timeout_s": FAR, "ipc_acquire_timeout_s": FAR,
        "ipc_connect_timeout_s": FAR, "ipc_health_interval_s": FAR / 10, "retention_days": 0,
        "repair_attempts": 0, "max_concurrent": 2, **overrides})
    provider = ReplayProvider(text, rate) if text is not None else ReplayProvider(tokens_per_s=rate)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_agent, settings, providers={"replay": provider}))
            store = freeze_while_storing(JobStore(settings.db_path, cleanup_timeout_s=FAR), clock)
            await nursery.start(store.run)
            for doc in unfinished:
                await store.put(doc)
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            while not pool.status()["healthy"]:
                await trio.sleep(0.01)
            sandbox = SlowSandbox(settings, run_s)
            typed: Sandbox = sandbox  # the stand-in fits the Protocol (mypy checks this line)
            services = Services(settings, pool, typed, store_wrapper(store) if store_wrapper else store,
                                ArtifactStore(settings.artifacts_dir), JobQueue(100, 30.0), Metrics())
            manager = JobManager(services)
            # As serve does it: the work stops first, then the services it used.
            async with trio.open_nursery() as work:
                await work.start(manager.run)
                yield World(manager, store, sandbox, settings, work)
                work.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


async def wait_for_state(buf: EventBuffer, state: str) -> None:
    while True:
        events = await buf.get_batch()
        assert events, f"the job ended before reaching {state}"
        if any(isinstance(e, StateEvent) and e.state == state for e in events):
            return


async def test_a_job_runs_to_complete_and_is_stored(tmp_path, autojump_clock):
    async with world(tmp_path, autojump_clock) as w:
        job = await w.manager.submit(JobSpec(prompt="squares", execute=False))
        assert await w.store.get(job.id) is not None  # durable when submit returns (maybe running by now)
        await job.finished.wait()
        stored = await w.store.get(job.id)
        assert stored is not None and stored.state == "COMPLETE", stored
        assert [s.name for s in stored.stages] == ["PARSING", "GENERATING", "PACKAGING", "EXPORTING"]
        assert stored.usage.provider == "replay" and stored.files[0].path == "main.py"
        assert w.manager.active == {} and w.manager.busy == 0


async def test_a_job_that_executes_takes_the_sandbox_time(tmp_path, autojump_clock):
    async with world(tmp_path, autojump_clock, run_s=7.5) as w:
        job = await w.manager.submit(JobSpec(prompt="squares"))
        await job.finished.wait()
        doc = job.document()
        assert doc.state == "COMPLETE" and w.sandbox.runs == 1
        [executing] = [s for s in doc.stages if s.name == "EXECUTING"]
        assert executing.duration_ms is not None and executing.duration_ms >= 7500
        assert doc.execution is not None and doc.execution.verdict == "accepted"


def _stored(job_id: str, state: str, recovered: int = 0) -> JobDocument:
    return JobDocument(id=job_id, state=state, priority="normal", created_at="2026-01-01T00:00:00Z",
                       request=JobSpec(prompt="p", execute=False), recovered=recovered,
                       started_at=None if state == "QUEUED" else "2026-01-01T00:00:01Z")


async def test_recovery_requeues_unfinished_jobs_and_fails_the_ones_interrupted_too_often(tmp_path,
                                                                                          autojump_clock):
    unfinished = [_stored("a" * 32, "QUEUED"), _stored("b" * 32, "GENERATING"), _stored("c" * 32, "EXECUTING", 3)]
    async with world(tmp_path, autojump_clock, unfinished=unfinished, max_recoveries=3) as w:
        with trio.fail_after(FAR):
            while w.manager.active:
                await trio.sleep(1)
        a, b, c = [await w.store.get(x * 32) for x in "abc"]
        assert a.state == "COMPLETE" and b.state == "COMPLETE", (a, b)
        assert (a.recovered, b.recovered) == (1, 1)
        assert msgspec.to_builtins(b.attempts[0]) == {"interrupted": True, "stage": "GENERATING"}
        assert c.state == "FAILED" and c.error is not None and c.error.code == "interrupted"
        assert c.error.stage == "EXECUTING" and c.recovered == 3


async def test_shutdown_gives_running_jobs_the_grace_then_stores_them_queued(tmp_path, autojump_clock):
    async with world(tmp_path, autojump_clock, run_s=100.0) as w:
        buf = EventBuffer()
        job = await w.manager.submit(JobSpec(prompt="squares"), watcher=buf)
        await wait_for_state(buf, "EXECUTING")
        t0 = trio.current_time()
        await w.manager.drain(2.5)
        assert trio.current_time() - t0 == 2.5  # the grace, exactly: the run takes 100 s
        assert w.manager.shutting_down
        with pytest.raises(errors.ShuttingDown):
            await w.manager.submit(JobSpec(prompt="late"))
        w.nursery.cancel_scope.cancel()  # what serve does once the grace is over
    store = freeze_while_storing(JobStore(w.settings.db_path), autojump_clock)  # what the next start finds
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        stored = await store.get(job.id)
        nursery.cancel_scope.cancel()
    assert stored is not None and stored.state == "QUEUED"
    assert msgspec.to_builtins(stored.attempts[-1]) == {"interrupted": True, "stage": "EXECUTING"}
    async with world(tmp_path, autojump_clock, run_s=0.5) as w:  # the next start runs it
        with trio.fail_after(FAR):
            while w.manager.active:
                await trio.sleep(1)
        again = await w.store.get(job.id)
        assert again.state == "COMPLETE" and again.recovered == 1


async def test_cancel_a_queued_job(tmp_path, autojump_clock):
    async with world(tmp_path, autojump_clock, run_s=100.0, max_concurrent=1) as w:
        first = await w.manager.submit(JobSpec(prompt="a"))
        second = await w.manager.submit(JobSpec(prompt="b"))
        assert second.state == State.QUEUED and w.manager.queue.position(second.id) == 0
        doc = await w.manager.cancel(second.id)
        assert doc.state == "CANCELLED" and doc.error is not None and doc.error.stage == "QUEUED"
        assert len(w.manager.queue) == 0 and (await w.store.get(second.id)).state == "CANCELLED"
        with pytest.raises(errors.JobFinished):
            await w.manager.cancel(second.id)
        with pytest.raises(errors.JobNotFound):
            await w.manager.cancel("f" * 32)
        await w.manager.cancel(first.id)


@pytest.mark.parametrize("state", ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"])
async def test_cancel_in_every_running_state(tmp_path, autojump_clock, state):
    # Tokens at 5 a second hold GENERATING; a 100 s run holds EXECUTING; the other stages
    # pass at once, so the cancel lands in them or at the next stage's first checkpoint.
    async with world(tmp_path, autojump_clock, rate=5.0, run_s=100.0) as w:
        buf = EventBuffer()
        job = await w.manager.submit(JobSpec(prompt="x"), watcher=buf)
        await wait_for_state(buf, state)
        t0 = trio.current_time()
        try:
            doc = await w.manager.cancel(job.id)
        except errors.JobFinished:
            assert state == "EXPORTING"  # the last stage may finish first: 409, never a false CANCELLED
            assert (await w.store.get(job.id)).state == "COMPLETE"
            return
        order = ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]
        assert doc.state == "CANCELLED" and doc.error is not None and doc.error.code == "cancelled"
        assert doc.error.stage in order[order.index(state):order.index(state) + 2]
        assert trio.current_time() - t0 < 1.0  # at once, not after the run's 100 s
        assert (await w.store.get(job.id)).state == "CANCELLED"
        if doc.error.stage == "EXECUTING":
            assert doc.execution is None or doc.execution.termination == "cancelled"


async def test_a_job_whose_commit_fails_never_runs_even_if_a_worker_took_it(tmp_path, autojump_clock):
    # Idle workers park in queue.get(), so put_nowait hands the new job to one at once,
    # before submit's commit has finished. When the commit then fails, the client gets
    # the error: the job must not run anyway.
    async with world(tmp_path, autojump_clock, store_wrapper=FailingFirstPut) as w:
        while w.manager.queue.statistics().getters_waiting < 2:  # both workers parked
            await trio.sleep(0)
        buf = EventBuffer()
        with pytest.raises(errors.StoreError):
            await w.manager.submit(JobSpec(prompt="x", execute=False), watcher=buf)
        await trio.sleep(10)
        assert len(buf) == 0  # no state event: it never started
        assert w.manager.active == {} and w.manager.busy == 0
        [row] = [j for j in (await w.store.page())[0]] or [None]
        assert row is None  # nothing of it was stored
        ok = await w.manager.submit(JobSpec(prompt="y", execute=False))  # the next one runs
        await ok.finished.wait()
        assert ok.state == State.COMPLETE


async def test_job_documents_round_trip_through_the_store(tmp_path, autojump_clock):
    async with world(tmp_path, autojump_clock) as w:
        job = await w.manager.submit(JobSpec(prompt="x", execute=False, export=("zip", "tar")))
        await job.finished.wait()
        stored = await w.store.get(job.id)
        assert stored == job.document()
        rebuilt = Job.from_document(stored)
        assert rebuilt.document() == stored and rebuilt.finished.is_set()
