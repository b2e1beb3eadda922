"""A job: its state machine, its document, and the events its watchers see.

The job document is the contract's; :meth:`Job.document` renders it. Watchers (WebSocket
clients, ``wait=true`` requests) subscribe to an :class:`EventBuffer`, which never blocks
the job: a slow reader's pending ``token`` and ``output`` events are coalesced into one,
while ``state``, ``file`` and ``done`` events are always kept, so a buffer's length is
bounded by the number of states and files, never by the number of tokens.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections import deque
from datetime import datetime, UTC
from typing import Any
from collections.abc import Sequence

import trio


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


def empty_usage() -> dict[str, Any]:
    return {"provider": None, "model": None, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def new_id() -> str:
    """32 hex digits: the creation time in milliseconds (12), then 80 random bits (20).

    Shaped like UUIDv7, so ids sort by creation and each new row lands at the right
    edge of the jobs database's id index instead of a random page of it: with 100,000
    jobs stored, a commit's p99 was 35 ms with random ids and 3 ms with these.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class EventBuffer:
    """One watcher's pending events; bounded by coalescing, never by dropping state."""

    COALESCE = ("token", "output")

    def __init__(self) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._ready = trio.Event()
        self.closed = False
        self.coalesced = 0

    def push(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        kind = event["type"]
        if kind in self.COALESCE and self._events:
            last = self._events[-1]
            if last["type"] == kind and last.get("stream") == event.get("stream"):
                key = "text" if kind == "token" else "data"
                last[key] = last[key] + event[key]
                self.coalesced += 1
                return
        self._events.append(dict(event) if kind in self.COALESCE else event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._events)

    async def get_batch(self) -> list[dict[str, Any]]:
        """Everything pending, waiting for at least one event; [] once closed and drained."""
        while not self._events:
            if self.closed:
                return []
            await self._ready.wait()
            self._ready = trio.Event()
        out = list(self._events)
        self._events.clear()
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
        "usage",
        "watchers",
    )

    def __init__(self, request: dict[str, Any], *, job_id: str | None = None) -> None:
        self.id = job_id or new_id()
        self.request = request
        self.state = State.QUEUED
        self.progress = 0.0
        self.created_at = now_iso()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.stages: Sequence[dict[str, Any]] = ()
        self.files: Sequence[dict[str, Any]] = ()
        self.execution: dict[str, Any] | None = None
        self.attempts: Sequence[dict[str, Any]] = ()  # one per generate/execute round
        self.outputs: Sequence[dict[str, Any]] = ()  # files the program wrote (collect: true)
        self.usage: dict[str, Any] | None = None  # set by GENERATING
        self.artifacts: Sequence[dict[str, Any]] = ()
        self.error: dict[str, Any] | None = None
        self.recovered = 0  # times this job was re-queued after a restart
        self.queue_position: int | None = None
        self.accepted: dict[str, Any] | None = None  # the document as first stored, until answered
        self.watchers: set[EventBuffer] | None = None
        self.finished = trio.Event()
        self.cancel_scope: trio.CancelScope | None = None
        self.cancel_requested = False
        self._stage_t0: float | None = None

    def take_accepted(self) -> dict[str, Any]:
        """The document as first stored, for the one answer that accepts the job; then
        dropped, so it is not kept for every queued job."""
        doc, self.accepted = self.accepted or self.document(), None
        return doc

    def add_attempt(self, record: dict[str, Any]) -> None:
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
        if self.stages and self.stages[-1]["finished_at"] is None:
            last = self.stages[-1]
            last["finished_at"] = stamp
            t0 = t if self._stage_t0 is None else self._stage_t0
            last["duration_ms"] = round((t - t0) * 1000, 3)
        if state in RUNNING:
            if self.started_at is None:
                self.started_at = stamp
            self.stages = [*self.stages, {"name": state.value, "started_at": stamp, "finished_at": None,
                                          "duration_ms": None}]
            self._stage_t0 = t
        self.state = state
        if state in PROGRESS:
            self.progress = max(self.progress, PROGRESS[state]) if state != State.QUEUED else 0.0
        if state.terminal:
            self.finished_at = stamp
            if state == State.COMPLETE:
                self.progress = 1.0
        self.emit({"type": "state", "state": state.value, "progress": round(self.progress, 4)})

    def finish(self, state: State, error: dict[str, Any] | None = None) -> None:
        self.error = error
        self.queue_position = None
        self.enter(state)
        self.emit({"type": "done", "job": self.document()})
        for w in list(self.watchers or ()):
            w.close()
        # ``finished`` is set by whoever stores the final document (the manager), so that
        # anyone woken by it reads a stored, final job.

    # --- events -------------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        if self.watchers:
            for w in self.watchers:
                w.push(event)

    def watch(self) -> EventBuffer:
        buf = EventBuffer()
        if self.state.terminal:
            buf.push({"type": "done", "job": self.document()})
            buf.close()
        else:
            self.add_watcher(buf)
        return buf

    def unwatch(self, buf: EventBuffer) -> None:
        if self.watchers:
            self.watchers.discard(buf)

    # --- the document ---------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "priority": self.request.get("priority", "normal"),
            "progress": round(self.progress, 4),
            "queue_position": self.queue_position if self.state == State.QUEUED else None,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stages": [dict(s) for s in self.stages],
            "request": {k: v for k, v in self.request.items() if k != "wait"},
            "files": list(self.files),
            "execution": self.execution,
            "attempts": list(self.attempts),
            "outputs": list(self.outputs),
            "usage": dict(self.usage) if self.usage is not None else empty_usage(),
            "artifacts": [
                {k: v for k, v in a.items() if k in ("format", "url", "size", "sha256", "filename")}
                for a in self.artifacts
            ],
            "error": self.error,
            "recovered": self.recovered,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Job:
        """Rebuild a job from its stored document (for recovery and finished jobs)."""
        job = cls(dict(doc.get("request") or {}), job_id=doc["id"])
        job.state = State(doc["state"])
        job.progress = float(doc.get("progress") or 0.0)
        job.created_at = doc.get("created_at") or job.created_at
        job.started_at = doc.get("started_at")
        job.finished_at = doc.get("finished_at")
        job.stages = list(doc.get("stages") or [])
        job.files = list(doc.get("files") or [])
        job.execution = doc.get("execution")
        job.attempts = list(doc.get("attempts") or [])
        job.outputs = list(doc.get("outputs") or [])
        job.usage = dict(doc["usage"]) if doc.get("usage") else None
        job.artifacts = list(doc.get("artifacts") or [])
        job.error = doc.get("error")
        job.recovered = int(doc.get("recovered") or 0)
        if job.state.terminal:
            job.finished.set()
        return job

    def __repr__(self) -> str:
        return (f"<Job {self.id} {self.state.value} progress={self.progress:.2f} "
                f"watchers={len(self.watchers or ())}>")
