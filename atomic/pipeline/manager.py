"""The job manager: accepts work, queues it, runs it, keeps it durable.

Accepting a job is *decide, then act*: a queue slot is reserved synchronously (so a
burst past capacity is refused with ``queue_full`` before anything is written), then the
job document is committed to the store, and only then is the client told 202. At most
``max_concurrent`` workers take jobs (and ``/api/execute`` runs) from the priority queue;
each job runs in its own cancel scope and nursery, so cancelling it tears down its
generation, its sandbox and its stage tasks together.

On start, jobs the store holds as unfinished are queued again (a job that keeps being
interrupted is failed with ``interrupted`` instead). On shutdown, running jobs get a grace
period, then are cancelled and stored as QUEUED, to be picked up by the next start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import trio

from .. import errors, logs, tracing
from ..contract import Attempt, ExecutionResult, JobDocument, JobSpec
from ..contract.documents import JobError
from ..errors import JobFailed
from .job import EventBuffer, Job, State
from .services import OnOutput, Services
from .stages import Pipeline

if TYPE_CHECKING:
    from ..sandbox import RunSpec

log = logging.getLogger("atomic.jobs")


@dataclass
class ExecRun:
    """An /api/execute run (or a whole /api/execute/batch) waiting in the queue for a worker."""

    id: str
    spec: RunSpec | list[RunSpec]  # a batch: the list
    on_output: OnOutput | None = None
    done: trio.Event = field(default_factory=trio.Event)
    result: ExecutionResult | list[ExecutionResult | errors.AtomicError] | None = None
    error: errors.AtomicError | None = None
    scope: trio.CancelScope | None = None


def _cancelled(stage: str) -> JobError:
    return JobError(code="cancelled", message="the job was cancelled", stage=stage)


class JobManager:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.settings = services.settings
        self.queue = services.queue
        self.active: dict[str, Job] = {}
        self.runs: dict[str, ExecRun] = {}
        self.shutting_down = False
        self.busy = 0
        self._idle = trio.Event()
        self._idle.set()
        self._run_seq = 0
        # Jobs whose first commit is under way: a worker that takes one from the queue
        # (put_nowait may hand it over at once) waits for the commit before running it.
        self._committing: dict[str, trio.Event] = {}
        self.queue.on_get = self._on_get

    # --- service ----------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover unfinished jobs, then run the workers and the retention sweeper."""
        await self.recover()
        async with trio.open_nursery() as nursery:
            for _ in range(self.settings.max_concurrent):
                nursery.start_soon(self._worker)
            if self.settings.retention_days > 0:
                nursery.start_soon(self._sweeper)
            task_status.started()

    async def drain(self, grace: float) -> None:
        """Stop taking work and give running jobs ``grace`` seconds to finish."""
        self.shutting_down = True
        with trio.move_on_after(grace):
            await self._idle.wait()

    # --- accepting ----------------------------------------------------------------------
    async def submit(self, request: JobSpec, *, watcher: EventBuffer | None = None,
                     traceparent: str | bytes | None = None) -> Job:
        """Accept a job: durable when this returns. ``watcher`` sees every event from the first.
        ``traceparent``: the client's W3C trace context (tracing on), the job trace's parent."""
        if self.shutting_down:
            raise errors.ShuttingDown("the server is shutting down and takes no new jobs")
        job = Job(request)
        if watcher is not None:
            job.add_watcher(watcher)
        committed = self._committing[job.id] = trio.Event()
        try:
            self.queue.put_nowait(job.id, request.priority)  # raises QueueFull
        except BaseException:
            del self._committing[job.id]
            raise
        self.active[job.id] = job
        job.queue_position = self.queue.position(job.id)
        if tracing.enabled():
            job.trace = tracing.start_job(job, traceparent)
            job.trace_id = job.trace.trace_id if job.trace is not None else None
        # The 202 answer shows the job as accepted, even if a worker starts it once the
        # document is committed.
        job.accepted = job.document()
        try:
            await self.s.store.put(job.accepted)
        except BaseException:
            # Not accepted: out of the queue, or (handed to a worker already) dropped by
            # that worker, which finds it gone from ``active`` once woken below.
            self.queue.remove(job.id)
            self.active.pop(job.id, None)
            raise
        finally:
            del self._committing[job.id]
            committed.set()
        self.s.metrics.job_state(None, State.QUEUED.value)
        return job

    async def execute(self, spec: RunSpec, priority: str = "normal",
                      on_output: OnOutput | None = None) -> ExecutionResult:
        """Run one /api/execute body through the queue; returns the ExecutionResult."""
        result = await self._queued(ExecRun(id="", spec=spec, on_output=on_output), priority)
        assert not isinstance(result, list)
        return result

    async def execute_batch(self, specs: list[RunSpec],
                            priority: str = "normal") -> list[ExecutionResult | errors.AtomicError]:
        """Run an /api/execute/batch through the queue as one item (the sandbox runs it in
        ``batch_lanes`` sandboxes at once); returns its results (or errors) in order."""
        result = await self._queued(ExecRun(id="", spec=specs), priority)
        assert isinstance(result, list)
        return result

    async def _queued(self, run: ExecRun, priority: str) -> ExecutionResult | list[ExecutionResult | errors.AtomicError]:
        if self.shutting_down:
            raise errors.ShuttingDown("the server is shutting down and takes no new runs")
        self._run_seq += 1
        run.id = f"run-{self._run_seq}"
        self.queue.put_nowait(run.id, priority)
        self.runs[run.id] = run
        try:
            await run.done.wait()
        finally:
            if not run.done.is_set():
                # The client went away: leave the queue, or stop the run.
                self.queue.remove(run.id)
                if run.scope is not None:
                    run.scope.cancel()
            self.runs.pop(run.id, None)
        if run.error is not None:
            raise run.error
        assert run.result is not None
        return run.result

    # --- reading ------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobDocument:
        job = self.active.get(job_id)
        if job is not None:
            return self._document(job)
        doc = await self.s.store.get(job_id)
        if doc is None:
            raise errors.JobNotFound(f"no job has the id {job_id!r}")
        return doc

    async def job(self, job_id: str) -> Job:
        """The live job, or one rebuilt from its stored document."""
        job = self.active.get(job_id)
        if job is not None:
            return job
        doc = await self.s.store.get(job_id)
        if doc is None:
            raise errors.JobNotFound(f"no job has the id {job_id!r}")
        return Job.from_document(doc)

    async def page(self, state: str | None, limit: int, cursor: str | None) -> tuple[list[JobDocument], str | None]:
        """A page of job documents, newest first (live jobs as they are now)."""
        docs, nxt = await self.s.store.page(state, limit, cursor)
        out = []
        for doc in docs:
            live = self.active.get(doc.id)
            out.append(self._document(live) if live is not None else doc)
        return out, nxt

    def _document(self, job: Job) -> JobDocument:
        if job.state == State.QUEUED:
            job.queue_position = self.queue.position(job.id)
        return job.document()

    # --- cancelling ---------------------------------------------------------------------
    async def cancel(self, job_id: str) -> JobDocument:
        """Cancel a queued or running job; it is kept, in CANCELLED."""
        job = self.active.get(job_id)
        if job is None:
            doc = await self.s.store.get(job_id)
            if doc is None:
                raise errors.JobNotFound(f"no job has the id {job_id!r}")
            raise errors.JobFinished(f"job {job_id} has already ended ({doc.state})")
        if job.state.terminal:
            raise errors.JobFinished(f"job {job_id} has already ended ({job.state.value})")
        job.cancel_requested = True
        if job.state == State.QUEUED and self.queue.remove(job.id):
            await self._finish(job, State.CANCELLED, _cancelled(State.QUEUED.value))
            return job.document()
        if job.cancel_scope is not None:
            job.cancel_scope.cancel()
        # A running job's cleanup (its sandbox removed) is bounded by cleanup_timeout_s.
        with trio.move_on_after(2 * self.settings.cleanup_timeout_s):
            await job.finished.wait()
        if job.state.terminal and job.state != State.CANCELLED:
            # It ended on its own before the cancel could take effect.
            raise errors.JobFinished(f"job {job_id} ended ({job.state.value}) before it could be cancelled")
        return job.document()

    # --- recovery and retention ---------------------------------------------------------
    async def recover(self) -> None:
        docs = await self.s.store.unfinished()
        requeued = failed = 0
        for doc in docs:
            job = Job.from_document(doc)
            if job.recovered >= self.settings.max_recoveries:
                job.error = None
                await self._finish(
                    job,
                    State.FAILED,
                    JobError(
                        code="interrupted",
                        message=f"the job was interrupted {job.recovered + 1} times by restarts; not retried",
                        stage=doc.state,
                    ),
                )
                failed += 1
                continue
            interrupted_in = job.state.value
            self._reset(job)
            job.recovered += 1
            job.add_attempt(Attempt(interrupted=True, stage=interrupted_in))
            if tracing.enabled():  # the trace it had goes on
                job.trace = tracing.start_job(job, trace_id=job.trace_id)
                job.trace_id = job.trace.trace_id if job.trace is not None else job.trace_id
            self.queue.put_nowait(job.id, job.request.priority, force=True)
            self.active[job.id] = job
            await self.s.persist(job)
            requeued += 1
        if docs:
            log.info("recovered %d unfinished job(s): %d re-queued, %d failed as interrupted",
                     len(docs), requeued, failed)

    @staticmethod
    def _reset(job: Job) -> None:
        if job.trace is not None:
            job.trace.abandon("interrupted")
            job.trace = None
        job.state = State.QUEUED
        job.progress = 0.0
        job.started_at = None
        job.stages = ()
        job.files = ()
        job.execution = None
        job.artifacts = ()
        job.error = None

    async def _sweeper(self) -> None:
        while True:
            try:
                ids = await self.s.store.prune(self.settings.retention_days * 86400)
                for job_id in ids:
                    await self.s.artifacts.remove(job_id)
                if ids:
                    log.info("pruned %d finished job(s) past retention", len(ids))
            except errors.AtomicError as exc:
                log.warning("retention sweep failed: %s", exc)
            await trio.sleep(self.settings.retention_sweep_s)

    # --- running ------------------------------------------------------------------------
    def _on_get(self, item_id: str, waited_s: float) -> None:
        self.s.metrics.queue_wait(waited_s)

    async def _worker(self) -> None:
        while True:
            item_id = await self.queue.get()
            committing = self._committing.get(item_id)
            if committing is not None:
                await committing.wait()  # a job runs only once it is durable
            self.busy += 1
            self._idle = trio.Event() if self.busy == 1 else self._idle
            try:
                run = self.runs.get(item_id)
                if run is not None:
                    await self._run_exec(run)
                    continue
                job = self.active.get(item_id)
                if job is None or job.state.terminal:
                    continue
                await self._run_job(job)
            finally:
                self.busy -= 1
                if self.busy == 0:
                    self._idle.set()

    async def _run_exec(self, run: ExecRun) -> None:
        with trio.CancelScope() as scope:
            run.scope = scope
            try:
                if isinstance(run.spec, list):
                    results = await self.s.sandbox.execute_batch(run.spec)
                    for r in results:
                        if not isinstance(r, errors.AtomicError):
                            self.s.metrics.sandbox_run(r.termination)
                    run.result = results
                else:
                    one = await self.s.sandbox.execute(run.spec, on_output=run.on_output)
                    self.s.metrics.sandbox_run(one.termination)
                    run.result = one
            except errors.AtomicError as exc:
                run.error = exc
        if scope.cancelled_caught and run.result is None and run.error is None:
            run.error = errors.AtomicError("the run was cancelled", code="cancelled")
        run.done.set()

    async def _run_job(self, job: Job) -> None:
        token = logs.job_id.set(job.id)  # every log line of this job carries its id
        try:
            with tracing.job_scope(job.trace):  # ... and its trace id; its spans hang from it
                await self._run_job_logged(job)
        finally:
            logs.job_id.reset(token)

    async def _run_job_logged(self, job: Job) -> None:
        t0 = trio.current_time()
        outcome: tuple[State, JobError | None] | None = None
        try:
            with trio.CancelScope() as scope:
                job.cancel_scope = scope
                if job.cancel_requested:
                    scope.cancel()
                try:
                    async with trio.open_nursery() as nursery:
                        pipeline = Pipeline(job, self.s)
                        pipeline.nursery = nursery  # type: ignore[attr-defined]
                        await pipeline.run()
                    outcome = (State.COMPLETE, None)
                except* JobFailed as group:
                    exc = group.exceptions[0]
                    assert isinstance(exc, JobFailed)
                    outcome = (State.FAILED, JobError(code=exc.code, message=exc.message, stage=exc.stage))
                except* Exception as group:  # a bug: the job fails, the server lives on
                    bug = group.exceptions[0]
                    log.error("job %s: unexpected error in %s", job.id, job.state.value, exc_info=bug)
                    outcome = (
                        State.FAILED,
                        JobError(code="internal_error", message=f"{type(bug).__name__}: {bug}",
                                 stage=job.state.value),
                    )
            if outcome is None:  # our scope was cancelled: the user asked
                outcome = (State.CANCELLED, _cancelled(job.state.value))
                if job.execution is not None and job.state == State.EXECUTING:
                    job.execution = msgspec.structs.replace(job.execution, termination="cancelled",
                                                            verdict="cancelled")
            await self._finish(job, *outcome)
        except BaseException as exc:
            if not errors.only_cancelled(exc):
                raise
            # The server itself is stopping: keep the job for the next start.
            if job.cancel_requested:
                with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                    await self._finish(job, State.CANCELLED, _cancelled(job.state.value))
            else:
                interrupted_in = job.state.value
                self._reset(job)
                job.add_attempt(Attempt(interrupted=True, stage=interrupted_in))
                with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                    await self.s.persist(job)
            raise
        finally:
            job.cancel_scope = None
            self.s.metrics.job_duration(trio.current_time() - t0)

    async def _finish(self, job: Job, state: State, error: JobError | None) -> None:
        previous = job.state.value
        job.finish(state, error)
        for stage in job.stages:
            if stage.duration_ms is not None:
                self.s.metrics.stage(stage.name, stage.duration_ms / 1000)
        self.s.metrics.job_state(previous, state.value)
        try:
            with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                await self.s.persist(job)
        finally:
            self.active.pop(job.id, None)
            job.finished.set()

    # --- introspection ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.active.values():
            out[job.state.value] = out.get(job.state.value, 0) + 1
        return out

    def __repr__(self) -> str:
        return (
            f"<JobManager active={len(self.active)} busy={self.busy}/{self.settings.max_concurrent} "
            f"queued={len(self.queue)} shutting_down={self.shutting_down}>"
        )


__all__ = ["ExecRun", "JobManager"]
