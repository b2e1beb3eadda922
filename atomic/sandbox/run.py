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
from .limits import INPUT_MOUNT, WORKSPACE, Limits, cpu_seconds
from .pool import Sandbox

TERMINATIONS = ("exited", "timeout", "oom", "pids", "output_limit", "cancelled", "error")
OnOutput = Callable[[str, str], None]

# What a process prints when fork/clone fails with EAGAIN (pids limit), when no cgroup
# counter can tell us.
_FORK_MARKERS = ("Resource temporarily unavailable", "BlockingIOError", "fork: retry", "Cannot fork")


@dataclass(frozen=True)
class RunSpec:
    """One program run. ``limits=None`` means the server defaults."""

    files: list[tuple[str, bytes]]
    command: list[str]
    stdin: bytes = b""
    limits: Limits | None = None
    job_id: str | None = None
    collect: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    termination: str
    truncated: bool
    files_out: list[tuple[str, bytes]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The contract's execution record."""
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration_ms": round(self.duration_ms, 3),
            "termination": self.termination,
            "truncated": self.truncated,
        }


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
                self.on_output(name, text)

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


def verdict(
    code: int | None,
    out: Output,
    killed: str | None,
    oom: bool,
    counters: tuple[int, int] | None,
    duration_ms: float,
    files_out: list[tuple[str, bytes]],
    *,
    final_counters: bool,
) -> ExecutionResult:
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
    return ExecutionResult(
        exit_code=code,
        stdout=stdout,
        stderr=stderr,
        duration_ms=duration_ms,
        termination=termination,
        truncated=out.truncated,
        files_out=files_out,
    )
