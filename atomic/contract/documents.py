"""Response documents: the job and its parts, execution results, status, languages, errors.

The job's parts are also the records the pipeline keeps while it runs (mutable Structs:
a stage's ``finished_at`` is filled in when the next one starts). ``UNSET`` fields are
left out of the JSON, so a document keeps the shape it always had (``model_ms`` only on
the GENERATING stage, ``estimated`` only when tokens were counted by us).
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType, field

from .requests import JobSpec
from .types import (
    Count,
    ExportFormat,
    Fraction,
    JobState,
    Millis,
    Priority,
    Role,
    Termination,
    Verdict,
)


class ErrorInfo(Struct, gc=False):
    """The contract's error object: a snake_case code and one clear sentence."""

    code: str
    message: str


class ErrorBody(Struct, gc=False):
    """Every error response: ``{"error": {"code", "message"}}``."""

    error: ErrorInfo


class JobError(Struct, gc=False):
    """Why a job ended FAILED or CANCELLED, and in which stage."""

    code: str
    message: str
    stage: str | None = None


class Stage(Struct):
    name: JobState
    started_at: str
    finished_at: str | None = None
    duration_ms: Millis | None = None
    model_ms: Annotated[Millis, Meta(description="GENERATING only: the model's own share")] | UnsetType = UNSET


class FileRecord(Struct, gc=False):
    path: str
    size: Count
    sha256: str


class CompileResult(Struct, gc=False):
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: Millis
    termination: Termination


class CaseResult(Struct, gc=False):
    name: Annotated[str | None, Meta(description="the case's name; null when it was given none")]
    verdict: Verdict
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: Millis
    termination: Termination
    truncated: bool


class ExecutionResult(Struct, gc=False):
    """A run's result: ``POST /api/execute``, a job's ``execution``. The sandbox makes
    these (:func:`atomic.sandbox.run.judged`); nothing copies them into another shape."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: Millis
    termination: Termination
    truncated: bool
    verdict: Verdict | None = None
    compile: CompileResult | None = None
    tests: list[CaseResult] | None = None
    passed: Count | None = None
    total: Count | None = None
    sandbox_ms: Annotated[Millis, Meta(description="the whole sandbox call, container start included")] | UnsetType = UNSET


class BatchError(Struct, gc=False):
    """A batch run that could not run at all (the others still did)."""

    error: ErrorInfo


class Usage(Struct):
    provider: str | None = None
    model: str | None = None
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    total_tokens: Count = 0
    estimated: Annotated[bool, Meta(description="tokens counted by Atomic, not the provider")] | UnsetType = UNSET


class Artifact(Struct, gc=False):
    format: ExportFormat
    url: str
    size: Count
    sha256: str
    filename: str


class Attempt(Struct, gc=False):
    """One generate/execute round (``attempt``), or a restart marker (``interrupted``)."""

    attempt: int | UnsetType = UNSET
    files: list[FileRecord] | UnsetType = UNSET
    execution: ExecutionResult | UnsetType | None = UNSET
    interrupted: bool | UnsetType = UNSET
    stage: str | UnsetType = UNSET
    candidate: Annotated[Count, Meta(description="the candidate of the round (jobs with samples > 1)")] | UnsetType = (
        UNSET)


class Candidate(Struct, gc=False):
    """One sample of a job: how its last judged round went. ``verdict`` is null while it was
    never judged (it failed before its program ran, or the job does not execute);
    ``passed``/``total`` count its test cases (a test program is one more case; without
    tests, the run itself is the one case)."""

    index: Count
    verdict: Verdict | None
    passed: Count
    total: Count
    attempts: Annotated[Count, Meta(description="its generate/judge rounds (1 + repairs)")]
    seed: Annotated[int, Meta(description="its sampling seed: the job's seed + index")] | None = None
    error: Annotated[JobError, Meta(description="why it ended without a judged program")] | UnsetType = UNSET


class JobDocument(Struct, gc=False):
    """The job document (``GET /api/jobs/{id}``), also what the jobs database stores."""

    id: str
    state: JobState
    priority: Priority
    created_at: str
    request: JobSpec
    progress: Fraction = 0.0
    queue_position: Count | None = None
    started_at: str | None = None
    finished_at: str | None = None
    stages: list[Stage] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    execution: ExecutionResult | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outputs: Annotated[list[FileRecord], Meta(description="files the program wrote (collect)")] = field(
        default_factory=list)
    usage: Usage = field(default_factory=Usage)
    artifacts: list[Artifact] = field(default_factory=list)
    error: JobError | None = None
    recovered: Annotated[Count, Meta(description="times a restart or another node took the job over")] = 0
    verdict: Verdict | None = None
    tests: list[CaseResult] | None = None
    passed: Count | None = None
    total: Count | None = None
    candidates: list[Candidate] = field(default_factory=list)
    chosen: Count | None = None
    node: str | None = None
    trace_id: str | None = None


class JobPage(Struct, gc=False):
    jobs: list[JobDocument]
    next: Annotated[str | None, Meta(description="cursor of the next page; null on the last")]


class QueueInfo(Struct, gc=False):
    depth: Count
    capacity: Count
    by_priority: dict[str, int]


class Workers(Struct, gc=False):
    busy: Count
    total: Count


class Agent(Struct, gc=False):
    healthy: bool
    pool_size: Count
    connected: Count
    providers: list[dict[str, Any]] = field(default_factory=list)  # as the agent describes each
    pid: int | UnsetType | None = UNSET  # when the agent is this server's child
    restarts: Count | UnsetType = UNSET


class SandboxInfo(Struct, gc=False):
    available: bool
    image: str
    warm: Count
    reason: str | None = None


class NodeInfo(Struct, gc=False):
    id: str
    role: Role
    busy: Count
    last_seen: str


class Status(Struct, gc=False):
    """``GET /api/status``."""

    status: Annotated[str, Meta(pattern="^(ok|degraded)$")]
    version: str
    uptime_s: Annotated[float, Meta(ge=0)]
    languages: list[str]
    queue: QueueInfo
    workers: Workers
    agent: Agent
    sandbox: SandboxInfo
    shutting_down: bool
    reasons: list[str] | UnsetType = UNSET
    nodes: list[NodeInfo] = field(default_factory=list)


class LanguageInfo(Struct, gc=False):
    name: str
    version: str | None
    compiled: bool
    entrypoint: str
    available: bool
    image: str
    packages: Annotated[list[str], Meta(description="Debian packages of its image (extra ones included)")] = field(
        default_factory=list)


class LanguageList(Struct, gc=False):
    """``GET /api/languages``."""

    languages: list[LanguageInfo]


class Health(Struct, gc=False):
    status: str


__all__ = [
    "Agent",
    "Artifact",
    "Attempt",
    "BatchError",
    "Candidate",
    "CaseResult",
    "CompileResult",
    "ErrorBody",
    "ErrorInfo",
    "ExecutionResult",
    "FileRecord",
    "Health",
    "JobDocument",
    "JobError",
    "JobPage",
    "LanguageInfo",
    "LanguageList",
    "NodeInfo",
    "QueueInfo",
    "SandboxInfo",
    "Stage",
    "Status",
    "Usage",
    "Workers",
]
