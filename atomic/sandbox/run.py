"""One run's records and its supervision: what a run is, how it is watched, what it came to.

The controller (:mod:`.controller`) decides where a program runs (a warm, fresh or
one-shot container) and owns the containers; everything here is about one program
once its container exists: the ``sh`` wrapper that starts it, the attached output
stream, the wall clock and output cap enforced by killing the container, the cgroup
counters that tell an OOM kill or a fork bomb, and the verdict that names how the run
ended. :func:`supervise` holds no state of its own; the controller hands it the means
(its kill and its reader limiter).
"""

from __future__ import annotations

import codecs
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..config import Settings
from ..contract.documents import CaseResult, CompileResult, ExecutionResult
from ..contract.requests import TestCaseIn
from ..contract.types import Verdict
from .judge import compile_failed, run_verdict
from .limits import INPUT_MOUNT, WORKSPACE, Limits, cpu_seconds
from .pool import Sandbox

TERMINATIONS = ("exited", "timeout", "oom", "pids", "output_limit", "cancelled", "error")
# (stream, text, case): ``case`` names the test case the output is from (its name, else
# its index), None for a plain run.
OnOutput = Callable[[str, str, "str | int | None"], None]

# What a process prints when fork/clone fails with EAGAIN (pids limit), when no cgroup
# counter can tell us.
_FORK_MARKERS = ("Resource temporarily unavailable", "BlockingIOError", "fork: retry", "Cannot fork")


@dataclass(frozen=True)
class Case:
    """One test case: the program runs once with it. ``None`` takes the run's own value.

    ``command`` (internal, not in the contract) replaces the run command for this case
    alone: a job's test program (``test_code``) is one more case, run after the program.
    """

    name: str | None = None
    stdin: bytes | None = None
    args: tuple[str, ...] | None = None
    expected_stdout: str | None = None
    expected_exit_code: int | None = None
    command: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunSpec:
    """One program run. ``limits=None`` means the server defaults.

    ``command`` replaces the language's run command (for a compiled language, the command
    run after the compile); None runs ``entrypoint`` (default: the language's) the
    language's way. ``args`` follow the command. With ``tests`` the program runs once per
    case, after one compile, and each case gets a verdict (:mod:`.judge`).
    """

    files: list[tuple[str, bytes]]
    command: list[str] | None = None
    stdin: bytes = b""
    limits: Limits | None = None
    job_id: str | None = None
    collect: bool = False
    language: str = "python"
    entrypoint: str | None = None
    args: tuple[str, ...] = ()
    tests: tuple[Case, ...] | None = None
    compare: str = "lines"


def case_of(case: TestCaseIn, command: tuple[str, ...] | None = None) -> Case:
    """The contract's test case as the sandbox runs it."""
    return Case(
        name=case.name,
        stdin=None if case.stdin is None else case.stdin.encode(),
        args=None if case.args is None else tuple(case.args),
        expected_stdout=case.expected_stdout,
        expected_exit_code=case.expected_exit_code,
        command=command,
    )


@dataclass(frozen=True)
class StepResult:
    """How one process ended (a run, a test case or a compile), as the sandbox saw it.
    :func:`judged` turns steps into the contract's records."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    termination: str
    truncated: bool


@dataclass(frozen=True)
class Ran:
    """A run's result (the contract's :class:`~atomic.contract.ExecutionResult`) and the
    files the program wrote, when the run collected them (``RunSpec.collect``)."""

    result: ExecutionResult
    files_out: list[tuple[str, bytes]] = field(default_factory=list)


def _step_fields(step: StepResult) -> dict[str, Any]:
    return {
        "exit_code": step.exit_code,
        "stdout": step.stdout,
        "stderr": step.stderr,
        "duration_ms": round(step.duration_ms, 3),
        "termination": step.termination,
        "truncated": step.truncated,
    }


def plain_result(step: StepResult) -> ExecutionResult:
    """A run without test cases or compile: judged by how it ended."""
    return ExecutionResult(**_step_fields(step), verdict=run_verdict(step.termination, step.exit_code))


def case_result(name: str | None, verdict: Verdict, step: StepResult) -> CaseResult:
    return CaseResult(name=name, verdict=verdict, **_step_fields(step))


def judged(compile: StepResult | None, cases: list[CaseResult], *, tests: int | None) -> ExecutionResult:
    """A compiled or judged run as the contract reports it.

    ``cases`` are the runs after the compile (one, unnamed, without test cases; none when
    the compile failed); ``tests`` is how many cases were asked for (None: a run without
    test cases). The run fields are the first case's not accepted, else the last's; after
    a failed compile they are the compiler's, so a reader of stdout/stderr alone still
    sees why (``tests`` is then empty while ``total`` counts the cases asked for).
    """
    compiled = None
    if compile is not None:
        fields = _step_fields(compile)
        del fields["truncated"]
        compiled = CompileResult(**fields)
        if compile_failed(compile.termination, compile.exit_code):
            return ExecutionResult(**_step_fields(compile), verdict="compile_error", compile=compiled,
                                   tests=None if tests is None else [],
                                   passed=None if tests is None else 0, total=tests)
    if not cases:
        raise ValueError("a run with no compile error has at least one case")
    top = next((c for c in cases if c.verdict != "accepted"), cases[-1])
    out = ExecutionResult(
        exit_code=top.exit_code, stdout=top.stdout, stderr=top.stderr, duration_ms=top.duration_ms,
        termination=top.termination, truncated=top.truncated, verdict=top.verdict, compile=compiled,
    )
    if tests is not None:
        out.tests = cases
        out.passed = sum(1 for c in cases if c.verdict == "accepted")
        out.total = tests
    return out


def wrapper(command: list[str], limits: Limits) -> list[str]:
    """Lower RLIMIT_CPU to the run's, copy the inputs into the tmpfs workspace, then
    become the program, reading the stdin file."""
    script = (
        f"ulimit -t {cpu_seconds(limits.timeout_s, limits.cpus)} && "
        f"cp -R --preserve=mode,timestamps {INPUT_MOUNT}/files/. {WORKSPACE}/ && "
        f'exec "$@" < {INPUT_MOUNT}/stdin'
    )
    return ["sh", "-c", script, "sh", *command]


def _raw_socket(sock: Any) -> socket.socket | None:
    raw = getattr(sock, "_sock", sock)
    return raw if isinstance(raw, socket.socket) else None


def prepare_stream(sock: Any) -> Any:
    # The SDK leaves the client's read timeout on hijacked sockets: a quiet program would
    # look finished. The wall clock is ours, so reads block until the engine closes.
    for s in (sock, getattr(sock, "_sock", None)):
        if s is not None and hasattr(s, "settimeout"):
            s.settimeout(None)
    return sock


def shutdown(sock: Any) -> None:
    raw = _raw_socket(sock)
    try:
        if raw is not None:
            raw.shutdown(socket.SHUT_RDWR)
        sock.close()
    except OSError:
        pass


def cgroup_counters(container_id: str) -> tuple[int, int] | None:
    """(oom kills, fork failures at the pids limit) from the host's cgroupfs, if visible."""
    base = "/sys/fs/cgroup"
    dirs = (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")
    found = False
    oom = pids = 0
    for d in dirs:
        for path, key in (
            (f"{base}/memory/{d}/memory.oom_control", "oom_kill"),
            (f"{base}/{d}/memory.events", "oom_kill"),
            (f"{base}/pids/{d}/pids.events", "max"),
            (f"{base}/{d}/pids.events", "max"),
        ):
            try:
                with open(path) as fh:
                    text = fh.read()
            except OSError:
                continue
            found = True
            for line in text.splitlines():
                k, _, v = line.partition(" ")
                if k == key and v.strip().isdigit():
                    if key == "oom_kill":
                        oom = max(oom, int(v))
                    else:
                        pids = max(pids, int(v))
    return (oom, pids) if found else None


class Output:
    """Both streams of one run: capped buffers, live decoding, the limit trip-wire."""

    def __init__(self, limit: int, on_output: OnOutput | None, wake: Callable[[], None]) -> None:
        self.limit = limit
        self.on_output = on_output
        self.buf = {"stdout": bytearray(), "stderr": bytearray()}
        self.dec = {k: codecs.getincrementaldecoder("utf-8")(errors="replace") for k in self.buf}
        self.truncated = False
        self._wake = wake

    def feed(self, stream_id: int, data: bytes) -> None:
        """Called in Trio (from the reader thread) for every frame."""
        name = "stderr" if stream_id == 2 else "stdout"
        buf = self.buf[name]
        room = self.limit - len(buf)
        if len(data) > room:
            data = data[: max(room, 0)]
            if not self.truncated:
                self.truncated = True
                self._wake()
        if not data:
            return
        buf += data
        if self.on_output is not None:
            text = self.dec[name].decode(data)
            if text:
                self.on_output(name, text, None)

    def text(self, name: str) -> str:
        # Not final: a multibyte character cut by the cap is dropped, not mangled.
        return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(bytes(self.buf[name]))


async def supervise(
    sb: Sandbox,
    sock: Any,
    limits: Limits,
    on_output: OnOutput | None,
    exit_code: Callable[[], Awaitable[int | None]],
    kill: Callable[[Sandbox], Awaitable[None]],
    *,
    settings: Settings,
    readers: trio.CapacityLimiter,
) -> tuple[Output, str | None, tuple[int, int] | None, int | None]:
    """Pump output until the program ends; kill it on timeout or on the output cap.

    Returns the output, why we killed it (``timeout``, ``output_limit`` or None), the
    last cgroup counters seen (None when the host's cgroupfs is not visible) and the
    exit code (None when we killed it).
    """
    from docker.utils.socket import frames_iter

    wake = trio.Event()
    out = Output(settings.output_limit_bytes, on_output, wake.set)
    counters: tuple[int, int] | None = None
    code: int | None = None

    def pump() -> None:
        try:
            for stream_id, data in frames_iter(sock, tty=False):
                trio.from_thread.run_sync(out.feed, stream_id, data)
        except (OSError, trio.RunFinishedError):
            pass  # the socket was shut under us: the run is over

    async def read(done: trio.Event) -> None:
        try:
            await trio.to_thread.run_sync(pump, limiter=readers, abandon_on_cancel=True)
        finally:
            done.set()
            wake.set()

    async def watch() -> None:
        nonlocal counters
        while True:
            seen = cgroup_counters(sb.container_id)
            if seen is not None:
                counters = seen
            await trio.sleep(settings.sandbox_poll_s)

    killed: str | None = None
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        nursery.start_soon(read, done)
        nursery.start_soon(watch)
        with trio.move_on_after(limits.timeout_s) as deadline:
            await wake.wait()
            if not out.truncated:
                code = await exit_code()
        if deadline.cancelled_caught:
            killed = "timeout"
        elif out.truncated:
            killed = "output_limit"
        if killed is not None:
            seen = cgroup_counters(sb.container_id)
            counters = seen if seen is not None else counters
            await kill(sb)
            code = None
        with trio.move_on_after(settings.cleanup_timeout_s):
            await done.wait()
        shutdown(sock)
        nursery.cancel_scope.cancel()
    return out, killed, counters, code


def outcome(
    code: int | None,
    out: Output,
    killed: str | None,
    oom: bool,
    counters: tuple[int, int] | None,
    duration_ms: float,
    files_out: list[tuple[str, bytes]],
    *,
    final_counters: bool,
) -> Ran:
    """How the run ended, from what :func:`supervise` saw and the engine reported."""
    stdout, stderr = out.text("stdout"), out.text("stderr")
    pids = bool(counters and counters[1])
    if not pids and not final_counters and any(m in stderr for m in _FORK_MARKERS):
        pids = True
    # Fork failures at the pids limit name the cause even when the swarm of processes
    # then also exhausted memory: a fork bomb is reported as pids, a memory bomb
    # (which never reaches the pids limit) as oom.
    if pids:
        termination = "pids"
    elif oom:
        termination = "oom"
    elif killed is not None:
        termination = killed
    elif code is None or code < 0:
        termination = "error"
    else:
        termination = "exited"
    step = StepResult(code, stdout, stderr, duration_ms, termination, out.truncated)
    return Ran(plain_result(step), files_out)
