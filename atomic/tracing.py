"""OpenTelemetry traces: off, and free, unless the standard ``OTEL_*`` variables ask.

One trace per job. Its root span (``job``) starts when the job is accepted (a client's W3C
``traceparent`` header, when well formed, is its parent; a malformed one is ignored) and
ends when the job does; the job document carries its ``trace_id``. Each stage is a child
span (``stage PARSING`` ...) with the job id, language, provider, model and verdict as
attributes. Inside a stage: ``agent.generate`` (client side) around each request to the
agent, whose W3C context travels in the IPC ``generate`` frame, so the agent's own span
(``agent.generate``, server side, in the agent process) joins the trace; and
``sandbox.run`` around each sandbox run, with its limits, termination and verdict (and
``sandbox.compile`` for a compile step the sandbox reports). Log lines of a job (and of
the agent's work for it) carry ``trace_id``.

When tracing is on: ``OTEL_TRACES_EXPORTER`` names ``otlp`` or ``console`` (``none``: off),
or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``);
``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. Everything else the SDK reads
itself: ``OTEL_SERVICE_NAME`` (default ``atomic``, and ``atomic-agent`` for the agent),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_*``. Export is OTLP over HTTP (protobuf), batched on the SDK's own thread.

Off, nothing of OpenTelemetry is imported: the hooks are ``None`` checks, the wrappers
(:func:`traced_agent`, :func:`traced_sandbox`) are not put in place, and
``traceparent`` headers are not even read.
"""

from __future__ import annotations

import contextvars
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from . import __version__, logs
from .errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from .contract import ExecutionResult, JobSpec, Usage
    from .contract.documents import JobError
    from .ipc.pool import AgentPool
    from .sandbox import RunSpec

OnToken = Callable[[str], None]
OnOutput = Callable[[str, str, "str | int | None"], None]  # (stream, text, test case)

EXPORTERS = ("otlp", "console", "none")
TERMINAL = frozenset({"COMPLETE", "FAILED", "CANCELLED"})

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_current: contextvars.ContextVar[JobTrace | None] = contextvars.ContextVar("atomic_job_trace", default=None)


def enabled() -> bool:
    """Whether traces are being made (set up by :func:`setup`)."""
    return _tracer is not None


# --- turning it on ----------------------------------------------------------------------------


def _exporters(env: Mapping[str, str]) -> list[str]:
    raw = env.get("OTEL_TRACES_EXPORTER")
    if raw is None or not raw.strip():
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    return [x.strip().lower() for x in raw.split(",") if x.strip()]


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(x != "none" for x in _exporters(env))


def problems(env: Mapping[str, str]) -> list[str]:
    """One line per ``OTEL_*`` value this build cannot follow (checked at start-up)."""
    out = []
    for name in _exporters(env):
        if name not in EXPORTERS:
            out.append(f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')!r}: expected otlp, console or none")
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(var)
        if value and value.strip() != "http/protobuf":
            out.append(f"{var}={value!r}: expected http/protobuf (Atomic exports OTLP over HTTP)")
            break
    return out


def setup(service: str, env: Mapping[str, str] | None = None, *, exporter: SpanExporter | None = None) -> bool:
    """Start making traces when ``env`` (default: ``os.environ``) asks, or with ``exporter``
    (tests: every span goes to it as it ends). ConfigError for values it cannot follow.
    Returns whether tracing is on."""
    env = os.environ if env is None else env
    if exporter is None:
        bad = problems(env)
        if bad:
            raise ConfigError("\n".join(bad))
        if not wanted(env):
            return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes = {"service.version": __version__}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = service
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in dict.fromkeys(_exporters(env)):
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            elif name == "console":
                from opentelemetry.sdk.trace.export import ConsoleSpanExporter

                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("atomic", __version__)
    return True


def shutdown(timeout_s: float = 5.0) -> None:
    """Export what is pending (bounded) and stop making traces."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))
        provider.shutdown()


# --- W3C trace context ------------------------------------------------------------------------

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")


def parse_traceparent(value: str | bytes | None) -> tuple[int, int, int] | None:
    """``(trace_id, parent_span_id, flags)`` of a W3C ``traceparent`` value, or None for
    anything malformed (which is then ignored, never an error): a version of ``ff``, ids of
    zeros, upper-case hex, a version-00 value with more fields."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None or m[1] == "ff" or (m[1] == "00" and m[5] is not None):
        return None
    trace_id, span_id = int(m[2], 16), int(m[3], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(m[4], 16)


def traceparent(span: Span) -> str:
    """The W3C ``traceparent`` of ``span``."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _remote(trace_id: int, span_id: int, flags: int) -> Context:
    from opentelemetry.context import Context
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return set_span_in_context(NonRecordingSpan(parent), Context())


def _context_of(span: Span) -> Context:
    from opentelemetry.context import Context
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(span, Context())


def _root() -> Context:
    from opentelemetry.context import Context

    return Context()


def _status_error(span: Span, description: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description))


def _kind(name: str) -> Any:
    from opentelemetry.trace import SpanKind

    return getattr(SpanKind, name)


# --- one trace per job --------------------------------------------------------------------------


class TracedJob(Protocol):
    """What a job trace reads of a job (:class:`atomic.pipeline.job.Job` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def request(self) -> JobSpec: ...

    @property
    def usage(self) -> Usage | None: ...

    @property
    def execution(self) -> ExecutionResult | None: ...

    @property
    def error(self) -> JobError | None: ...


def _job_facts(job: TracedJob) -> dict[str, Any]:
    out: dict[str, Any] = {"atomic.job.id": job.id, "atomic.language": job.request.language}
    usage = job.usage
    if usage is not None and usage.provider:
        out["atomic.provider"] = usage.provider
        out["atomic.model"] = usage.model or ""
    verdict = getattr(job, "verdict", None)  # the judged job's (tested generation)
    if verdict is None and job.execution is not None:
        verdict = getattr(job.execution, "verdict", None)
    if verdict:
        out["atomic.verdict"] = str(verdict)
    return out


class JobTrace:
    """A job's root span and the span of the stage it is in."""

    __slots__ = ("root", "stage", "trace_id")

    def __init__(self, root: Span) -> None:
        self.root = root
        self.stage: Span | None = None
        self.trace_id = f"{root.get_span_context().trace_id:032x}"

    def __repr__(self) -> str:
        return f"<JobTrace {self.trace_id} stage={'open' if self.stage is not None else 'none'}>"

    def parent(self) -> Context:
        """What a span made inside the job hangs from: its stage (else the job)."""
        return _context_of(self.stage if self.stage is not None else self.root)

    def enter(self, state: str, job: TracedJob) -> None:
        """The job moved to ``state``: the stage it leaves ends, with what the job knows now;
        a terminal state ends the job's span too."""
        now = time.time_ns()
        facts = _job_facts(job)
        if self.stage is not None:
            self.stage.set_attributes(facts)
            self.stage.end(now)
            self.stage = None
        if state in TERMINAL:
            self.root.set_attributes({**facts, "atomic.state": state})
            if job.error is not None:
                self.root.set_attribute("atomic.error.code", job.error.code)
                if state == "FAILED":
                    _status_error(self.root, f"{job.error.code}: {job.error.message}")
            self.root.end(now)
        elif state != "QUEUED" and _tracer is not None:
            self.stage = _tracer.start_span(f"stage {state}", context=_context_of(self.root), start_time=now,
                                            attributes={**facts, "atomic.stage": state})

    def abandon(self, why: str) -> None:
        """The job stops here without ending (the server is stopping): close its spans."""
        if self.stage is not None:
            self.stage.end()
            self.stage = None
        self.root.set_attribute("atomic.state", why)
        self.root.end()


def start_job(job: TracedJob, traceparent: str | bytes | None = None, *,
              trace_id: str | None = None) -> JobTrace | None:
    """The root span of a job accepted now (None when tracing is off). Its parent: the
    client's ``traceparent`` when well formed; else, for a job taken up again after a
    restart, the trace it had (``trace_id``); else none (a new trace)."""
    if _tracer is None:
        return None
    parsed = parse_traceparent(traceparent)
    if parsed is not None:
        context = _remote(*parsed)
    elif trace_id is not None and re.fullmatch(r"[0-9a-f]{32}", trace_id) and int(trace_id, 16):
        context = _remote(int(trace_id, 16), int.from_bytes(os.urandom(8)) or 1, 1)
    else:
        context = _root()
    root = _tracer.start_span("job", context=context, kind=_kind("SERVER"), attributes=_job_facts(job))
    return JobTrace(root)


@contextmanager
def job_scope(trace: JobTrace | None) -> Iterator[None]:
    """Within: the job's spans hang from ``trace`` and its log lines carry its trace id."""
    if trace is None:
        yield
        return
    t1 = _current.set(trace)
    t2 = logs.trace_id.set(trace.trace_id)
    try:
        yield
    finally:
        logs.trace_id.reset(t2)
        _current.reset(t1)


def _parent() -> Context:
    trace = _current.get()
    return trace.parent() if trace is not None else _root()


# --- the agent, from both sides -------------------------------------------------------------------


class TracedAgent:
    """The agent pool with a client span around each generation, whose context goes to
    the agent in the frame. Everything else is the pool's."""

    def __init__(self, pool: AgentPool) -> None:
        self._pool = pool

    def status(self) -> dict[str, Any]:
        return self._pool.status()

    async def generate(self, request: dict[str, Any], on_token: OnToken | None = None) -> dict[str, Any]:
        assert _tracer is not None
        attributes = {k: v for k, v in (("atomic.provider.requested", request.get("provider")),
                                        ("atomic.model.requested", request.get("model"))) if v}
        span = _tracer.start_span("agent.generate", context=_parent(), kind=_kind("CLIENT"), attributes=attributes)
        try:
            done = await self._pool.generate(request, on_token, trace={"traceparent": traceparent(span)})
        except BaseException as exc:
            _status_error(span, getattr(exc, "code", type(exc).__name__))
            raise
        finally:
            span.end()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def traced_agent(pool: AgentPool) -> AgentPool | TracedAgent:
    """``pool``, traced when tracing is on."""
    return TracedAgent(pool) if _tracer is not None else pool


class AgentSpan:
    """The agent's span for one generation (a no-op when tracing is off)."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def done(self, provider: str, model: str, prompt_tokens: int, completion_tokens: int, finish: str) -> None:
        if self.span is not None:
            self.span.set_attributes({"atomic.provider": provider, "atomic.model": model,
                                      "gen_ai.usage.input_tokens": prompt_tokens,
                                      "gen_ai.usage.output_tokens": completion_tokens,
                                      "atomic.finish_reason": finish})

    def failed(self, code: str) -> None:
        if self.span is not None:
            self.span.set_attribute("atomic.error.code", code)
            _status_error(self.span, code)


_NO_SPAN = AgentSpan(None)


@contextmanager
def agent_span(trace: Any, request_id: int) -> Iterator[AgentSpan]:
    """In the agent: a span for one ``generate`` frame, child of the ``trace`` it carried
    (``{"traceparent": ...}``; absent or malformed: a trace of its own)."""
    if _tracer is None:
        yield _NO_SPAN
        return
    parsed = parse_traceparent(trace.get("traceparent") if isinstance(trace, dict) else None)
    context = _remote(*parsed) if parsed is not None else _root()
    span = _tracer.start_span("agent.generate", context=context, kind=_kind("SERVER"),
                              attributes={"atomic.ipc.request_id": request_id, "atomic.process": "agent"})
    token = logs.trace_id.set(f"{span.get_span_context().trace_id:032x}")
    handle = AgentSpan(span)
    try:
        yield handle
    except BaseException as exc:
        handle.failed("cancelled" if type(exc).__name__ == "Cancelled" else getattr(exc, "code", type(exc).__name__))
        raise
    finally:
        logs.trace_id.reset(token)
        span.end()


# --- the sandbox -----------------------------------------------------------------------------------


def _limit_facts(spec: RunSpec) -> dict[str, Any]:
    limits = spec.limits
    out: dict[str, Any] = {}
    if limits is not None:
        for name in ("timeout_s", "memory_mb", "cpus", "pids", "compile_timeout_s", "compile_memory_mb"):
            value = getattr(limits, name, None)
            if value is not None:
                out[f"atomic.limits.{name}"] = value
    if spec.job_id:
        out["atomic.job.id"] = spec.job_id
    return out


def _step_facts(step: Any) -> dict[str, Any]:
    """How a run (or compile) ended, and the run's verdict."""
    out: dict[str, Any] = {}
    for name in ("termination", "exit_code", "duration_ms", "verdict", "truncated"):
        value = getattr(step, name, None)
        if value is not None:
            out[f"atomic.{name}"] = value
    return out


class Runs(Protocol):
    """What :class:`TracedSandbox` wraps: anything that runs a :class:`RunSpec`."""

    async def execute(self, spec: RunSpec, on_output: OnOutput | None = None) -> Any: ...

    async def execute_collecting(self, spec: RunSpec, on_output: OnOutput | None = None) -> Any: ...


S = TypeVar("S", bound=Runs)


class TracedSandbox:
    """The sandbox with a ``sandbox.run`` span around each run (and ``sandbox.compile``
    under it when the result reports a compile). Everything else is the sandbox's."""

    def __init__(self, sandbox: Runs) -> None:
        self._sandbox = sandbox

    async def execute(self, spec: RunSpec, on_output: OnOutput | None = None) -> Any:
        return await self._traced(spec, lambda: self._sandbox.execute(spec, on_output))

    async def execute_collecting(self, spec: RunSpec, on_output: OnOutput | None = None) -> Any:
        """As :meth:`execute`; the facts are read from the run's ``result``."""
        return await self._traced(spec, lambda: self._sandbox.execute_collecting(spec, on_output))

    async def _traced(self, spec: RunSpec, run: Callable[[], Awaitable[Any]]) -> Any:
        assert _tracer is not None
        start = time.time_ns()
        span = _tracer.start_span("sandbox.run", context=_parent(), start_time=start, attributes=_limit_facts(spec))
        try:
            ran = await run()
            result = getattr(ran, "result", ran)  # execute_collecting's Ran holds it
        except BaseException as exc:
            cancelled = type(exc).__name__ == "Cancelled" or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(lambda e: type(e).__name__ == "Cancelled"))
            span.set_attribute("atomic.termination", "cancelled" if cancelled else "error")
            if not cancelled:
                _status_error(span, getattr(exc, "code", type(exc).__name__))
            span.end()
            raise
        span.set_attributes(_step_facts(result))
        compile_step = getattr(result, "compile", None)
        if compile_step is not None:
            # The runner times the compile inside the container; placed at the run's start.
            ms = float(getattr(compile_step, "duration_ms", 0.0) or 0.0)
            child = _tracer.start_span("sandbox.compile", context=_context_of(span), start_time=start,
                                       attributes=_step_facts(compile_step))
            child.end(start + int(ms * 1_000_000))
        span.end()
        return ran

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sandbox, name)


def traced_sandbox(sandbox: S) -> S:
    """``sandbox``, traced when tracing is on (a proxy: what it does not trace is the
    sandbox's own)."""
    return cast(S, TracedSandbox(sandbox)) if _tracer is not None else sandbox


__all__ = [
    "AgentSpan",
    "JobTrace",
    "TracedAgent",
    "TracedSandbox",
    "agent_span",
    "enabled",
    "job_scope",
    "parse_traceparent",
    "problems",
    "setup",
    "shutdown",
    "start_job",
    "traced_agent",
    "traced_sandbox",
    "traceparent",
    "wanted",
]
