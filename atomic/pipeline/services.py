"""What a pipeline needs from the rest of the process, typed by what it uses.

Each collaborator is a :class:`~typing.Protocol`: the real ones are
:class:`~atomic.ipc.pool.AgentPool`, :class:`~atomic.sandbox.SandboxController`,
:class:`~atomic.store.JobStore`, :class:`~atomic.store.ArtifactStore`,
:class:`~atomic.queue.JobQueue` and :class:`~atomic.metrics.Metrics`; a test may hand
in a stand-in that fits the same shape (a sandbox that is not Docker, say) without the
pipeline knowing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..config import Settings

if TYPE_CHECKING:
    from ..contract import JobDocument
    from ..errors import AtomicError
    from ..queue import QueueStatistics
    from ..contract import ExecutionResult
    from ..sandbox import Limits, Ran, RunSpec
    from .job import Job

OnToken = Callable[[str], None]
# (stream, text, case): the test case the output is from (its name, else its index), or None.
OnOutput = Callable[[str, str, "str | int | None"], None]


class Agent(Protocol):
    """The agent connection pool."""

    def status(self) -> dict[str, Any]: ...

    async def generate(self, request: dict[str, Any], on_token: OnToken | None = None) -> dict[str, Any]: ...


class Sandbox(Protocol):
    """The sandbox controller."""

    def status(self) -> dict[str, Any]: ...

    def languages(self) -> list[str]: ...

    def image_for(self, language: str) -> str: ...

    def image_id(self, language: str) -> str | None: ...

    def resolve_limits(self, user: dict[str, Any] | None) -> Limits: ...

    def reconfigure(self, settings: Settings) -> None: ...

    async def execute(self, spec: RunSpec, on_output: OnOutput | None = None) -> ExecutionResult: ...

    async def execute_collecting(self, spec: RunSpec, on_output: OnOutput | None = None) -> Ran:
        """As :meth:`execute`, with the files the program wrote (``spec.collect``)."""
        ...

    async def execute_batch(self, specs: list[RunSpec]) -> list[ExecutionResult | AtomicError]: ...


class Store(Protocol):
    """The jobs database."""

    async def put(self, doc: JobDocument) -> None: ...

    def put_nowait(self, doc: JobDocument) -> None: ...

    async def get(self, job_id: str) -> JobDocument | None: ...

    async def page(
        self, state: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[JobDocument], str | None]: ...

    async def unfinished(self) -> list[JobDocument]: ...

    async def prune(self, older_than_s: float) -> list[str]: ...


class Artifacts(Protocol):
    """The archive files."""

    async def export(
        self, job_id: str, files: list[tuple[str, bytes]], formats: Sequence[str], *,
        meta: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    def path(self, job_id: str, fmt: str) -> Path | None: ...

    async def remove(self, job_id: str) -> None: ...


class Queue(Protocol):
    """The priority queue of job and run ids."""

    capacity: int
    on_get: Callable[[str, float], None] | None

    def put_nowait(self, job_id: str, priority: str, *, enqueued_at: float | None = None,
                   force: bool = False) -> None: ...

    def remove(self, job_id: str) -> bool: ...

    def position(self, job_id: str) -> int | None: ...

    async def get(self) -> str: ...

    def statistics(self) -> QueueStatistics: ...

    def __len__(self) -> int: ...


class Recorder(Protocol):
    """The metrics."""

    def job_state(self, previous: str | None, state: str) -> None: ...

    def stage(self, name: str, seconds: float) -> None: ...

    def queue_wait(self, seconds: float) -> None: ...

    def job_duration(self, seconds: float) -> None: ...

    def tokens(self, provider: str | None, model: str | None, usage: dict[str, Any]) -> None: ...

    def sandbox_run(self, termination: str) -> None: ...


@dataclass
class Services:
    """A pipeline's collaborators."""

    settings: Settings
    agent: Agent
    sandbox: Sandbox
    store: Store
    artifacts: Artifacts
    queue: Queue
    metrics: Recorder

    async def persist(self, job: Job) -> None:
        await self.store.put(job.document())

    async def persist_soon(self, job: Job) -> None:
        """Store a stage change with the next group commit, without waiting for it (a
        crash may lose it: recovery re-queues the job from its last committed state).
        Still a checkpoint, so a cancel lands in the stage it was asked in."""
        self.store.put_nowait(job.document())
        await trio.lowlevel.checkpoint()


__all__ = ["Agent", "Artifacts", "Queue", "Recorder", "Sandbox", "Services", "Store"]
