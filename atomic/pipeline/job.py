"""A job: its state machine, its document, and the events its watchers see.

The job document is the contract's (:class:`~atomic.contract.JobDocument`);
:meth:`Job.document` renders it from the typed records the pipeline keeps. Watchers
(WebSocket clients, ``wait=true`` requests) subscribe to an :class:`EventBuffer`, which
never blocks the job: a slow reader's pending ``token`` and ``output`` events are
coalesced into one, while ``state``, ``file`` and ``done`` events are always kept, so a
buffer's length is bounded by the number of states and files, never by the number of
tokens.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import trio

from ..contract import (
    Artifact,
    Attempt,
    Candidate,
    DoneEvent,
    ExecutionResult,
    FileRecord,
    JobDocument,
    JobSpec,
    OutputEvent,
    Stage,
    StateEvent,
    TokenEvent,
    Usage,
)
from ..contract.documents import JobError
from ..contract.stream import JobEvent
from ..tracing import JobTrace


class State(enum.StrEnum):
    QUEUED = "QUEUED"
    PARSING = "PARSING"
    GENERATING = "GENERATING"
    PACKAGING = "PACKAGING"
    EXECUTING = "EXECUTING"
    EXPORTING = "EXPORTING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({State.COMPLETE, State.FAILED, State.CANCELLED})
RUNNING = (State.PARSING, State.GENERATING, State.PACKAGING, State.EXECUTING, State.EXPORTING)

# Progress at the start of each stage; GENERATING and EXECUTING advance inside their span.
PROGRESS = {
    State.QUEUED: 0.0,
    State.PARSING: 0.02,
    State.GENERATING: 0.05,
    State.PACKAGING: 0.6,
    State.EXECUTING: 0.65,
    State.EXPORTING: 0.9,
    State.COMPLETE: 1.0,
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """32 hex digits: the creation time in milliseconds (12), then 80 random bits (20).

    Shaped like UUIDv7, so ids sort by creation and each new row lands at the right
    edge of the jobs database's id index instead of a random page of it: with 100,000
    jobs stored, a commit's p99 was 35 ms with random ids and 3 ms with these.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class EventBuffer:
    """One watcher's pending events; bounded by coalescing, never by dropping state."""

    def __init__(self) -> None:
        self._events: deque[JobEvent] = deque()
        self._ready = trio.Event()
        self.closed = False
        self.coalesced = 0
        self._owned: JobEvent | None = None  # the last event, when it is our own copy

    def push(self, event: JobEvent) -> None:
        if self.closed:
            return
        if isinstance(event, (TokenEvent, OutputEvent)):
            last = self._events[-1] if self._events else None
            if last is not None and last is self._owned:
                if isinstance(event, TokenEvent) and isinstance(last, TokenEvent) and last.candidate == event.candidate:
                    last.text += event.text
                    self.coalesced += 1
                    return
                if (isinstance(event, OutputEvent) and isinstance(last, OutputEvent) and last.stream == event.stream
                        and last.case == event.case and last.candidate == event.candidate):
                    last.data += event.data
                    self.coalesced += 1
                    return
            # Events are shared by every watcher of a job: coalesce into a copy of our own.
            event = msgspec.structs.replace(event)
            self._owned = event
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._events)

    async def get_batch(self) -> list[JobEvent]:
        """Everything pending, waiting for at least one event; [] once closed and drained."""
        while not self._events:
            if self.closed:
                return []
            await self._ready.wait()
            self._ready = trio.Event()
        out = list(self._events)
        self._events.clear()
        self._owned = None
        return out


class Job:
    """In-memory state of one job; the store holds its durable copy.

    Slotted, with the per-job lists left as shared empty tuples until something is
    written (a new list is made then): 100,000 queued jobs must fit in a small heap.
    """

    __slots__ = (
        "_stage_t0",
        "accepted",
        "artifacts",
        "attempts",
        "cancel_requested",
        "cancel_scope",
        "candidates",
        "chosen",
        "created_at",
        "error",
        "execution",
        "files",
        "finished",
        "finished_at",
        "id",
        "outputs",
        "progress",
        "queue_position",
        "recovered",
        "request",
        "stages",
        "started_at",
        "state",
        "trace",
        "trace_id",
        "usage",
        "watchers",
    )

    def __init__(self, request: JobSpec, *, job_id: str | None = None) -> None:
        self.id = job_id or new_id()
        self.request = request
        self.state = State.QUEUED
        self.progress = 0.0
        self.created_at = now_iso()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.stages: Sequence[Stage] = ()
        self.files: Sequence[FileRecord] = ()
        self.execution: ExecutionResult | None = None
        self.attempts: Sequence[Attempt] = ()  # one per generate/execute round
        self.candidates: Sequence[Candidate] = ()  # one per sample, once they run
        self.chosen: int | None = None  # the candidate kept (its files and execution are the job's)
        self.outputs: Sequence[FileRecord] = ()  # files the program wrote (collect: true)
        self.usage: Usage | None = None  # set by GENERATING
        self.artifacts: Sequence[Artifact] = ()
        self.error: JobError | None = None
        self.recovered = 0  # times this job was re-queued after a restart
        self.queue_position: int | None = None
        self.accepted: JobDocument | None = None  # the document as first stored, until answered
        self.watchers: set[EventBuffer] | None = None
        self.finished = trio.Event()
        self.cancel_scope: trio.CancelScope | None = None
        self.cancel_requested = False
        self._stage_t0: float | None = None
        self.trace: JobTrace | None = None  # when tracing is on (atomic.tracing)
        self.trace_id: str | None = None

    def take_accepted(self) -> JobDocument:
        """The document as first stored, for the one answer that accepts the job; then
        dropped, so it is not kept for every queued job."""
        doc, self.accepted = self.accepted or self.document(), None
        return doc

    def add_attempt(self, record: Attempt) -> None:
        self.attempts = [*self.attempts, record]

    def add_watcher(self, buf: EventBuffer) -> None:
        if self.watchers is None:
            self.watchers = set()
        self.watchers.add(buf)

    # --- state machine ------------------------------------------------------------------
    def enter(self, state: State) -> None:
        """Move to ``state``, closing the previous stage's timing record."""
        t = trio.current_time()
        stamp = now_iso()
        if self.stages and self.stages[-1].finished_at is None:
            last = self.stages[-1]
            last.finished_at = stamp
            t0 = t if self._stage_t0 is None else self._stage_t0
            last.duration_ms = round((t - t0) * 1000, 3)
        if state in RUNNING:
            if self.started_at is None:
                self.started_at = stamp
            self.stages = [*self.stages, Stage(name=state.value, started_at=stamp)]
            self._stage_t0 = t
        self.state = state
        if state in PROGRESS:
            self.progress = max(self.progress, PROGRESS[state]) if state != State.QUEUED else 0.0
        if state.terminal:
            self.finished_at = stamp
            if state == State.COMPLETE:
                self.progress = 1.0
        if self.trace is not None:
            self.trace.enter(state.value, self)  # the stage's span ends, the next one starts
        self.emit(StateEvent(state=state.value, progress=round(self.progress, 4)))

    def finish(self, state: State, error: JobError | None = None) -> None:
        self.error = error
        self.queue_position = None
        self.enter(state)
        self.emit(DoneEvent(job=self.document()))
        for w in list(self.watchers or ()):
            w.close()
        # ``finished`` is set by whoever stores the final document (the manager), so that
        # anyone woken by it reads a stored, final job.

    # --- events -------------------------------------------------------------------------
    def emit(self, event: JobEvent) -> None:
        if self.watchers:
            for w in self.watchers:
                w.push(event)

    def watch(self) -> EventBuffer:
        buf = EventBuffer()
        if self.state.terminal:
            buf.push(DoneEvent(job=self.document()))
            buf.close()
        else:
            self.add_watcher(buf)
        return buf

    def unwatch(self, buf: EventBuffer) -> None:
        if self.watchers:
            self.watchers.discard(buf)

    # --- the document ---------------------------------------------------------------------
    def document(self) -> JobDocument:
        return JobDocument(
            id=self.id,
            state=self.state.value,
            priority=self.request.priority,
            progress=round(self.progress, 4),
            queue_position=self.queue_position if self.state == State.QUEUED else None,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            # Stage records are still written to while the job runs; a document is a snapshot.
            stages=[msgspec.structs.replace(s) for s in self.stages],
            request=self.request,
            files=list(self.files),
            execution=self.execution,
            verdict=self.execution.verdict if self.execution is not None else None,
            tests=self.execution.tests if self.execution is not None else None,
            passed=self.execution.passed if self.execution is not None else None,
            total=self.execution.total if self.execution is not None else None,
            candidates=list(self.candidates),
            chosen=self.chosen,
            attempts=list(self.attempts),
            outputs=list(self.outputs),
            usage=msgspec.structs.replace(self.usage) if self.usage is not None else Usage(),
            artifacts=list(self.artifacts),
            error=self.error,
            recovered=self.recovered,
            trace_id=self.trace_id,
        )

    @classmethod
    def from_document(cls, doc: JobDocument) -> Job:
        """Rebuild a job from its stored document (for recovery and finished jobs)."""
        job = cls(doc.request, job_id=doc.id)
        job.state = State(doc.state)
        job.progress = doc.progress
        job.created_at = doc.created_at
        job.started_at = doc.started_at
        job.finished_at = doc.finished_at
        job.stages = list(doc.stages)
        job.files = list(doc.files)
        job.execution = doc.execution
        job.attempts = list(doc.attempts)
        job.candidates = list(doc.candidates)
        job.chosen = doc.chosen
        job.outputs = list(doc.outputs)
        job.usage = doc.usage
        job.artifacts = list(doc.artifacts)
        job.error = doc.error
        job.recovered = doc.recovered
        job.trace_id = doc.trace_id
        if job.state.terminal:
            job.finished.set()
        return job

    def __repr__(self) -> str:
        return (f"<Job {self.id} {self.state.value} progress={self.progress:.2f} "
                f"watchers={len(self.watchers or ())}>")
