"""Runner sessions, the host's side: a run planned into steps, sent to a runner sandbox, judged.

A run that compiles, or has test cases, or is part of a batch runs in a *runner
sandbox*: a container whose main process is :mod:`.runner`, fed one job at a time on
its stdin. :func:`plan` turns a :class:`~.run.RunSpec` into the runner's steps (the
compile, then one step per case, or one for a plain run); :class:`Session` sends a
plan, sets the container's memory, process and CPU limits for the job and again between
the compile and the cases, streams the output and returns the judged
:class:`~atomic.contract.ExecutionResult`. A session outlives its job: the controller keeps it for
the next one (:mod:`.runners`).

The runner enforces each step's wall clock and output cap itself; the session keeps a
deadline of its own above each (the step's limit plus :data:`STEP_GRACE_S`) and kills
the container when a runner stops answering, so a stuck runner costs a bounded wait and
an ``error``, never a hung worker.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import logging
import math
import posixpath
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from ..config import Settings
from ..errors import SandboxError, ValidationError
from ..languages import LANGUAGES, Language
from . import paths
from .engine import Engine
from .judge import COMPARE_MODES, case_verdict, compile_failed, run_verdict
from .limits import INPUT_MOUNT, MIB, RUNNER_PIDS, Limits, cpu_seconds
from .pool import Sandbox
from ..contract.documents import CaseResult, ExecutionResult
from .run import OnOutput, RunSpec, StepResult, case_result, judged, prepare_stream, shutdown

log = logging.getLogger(__name__)

RUNNER_FILE = "runner.py"
# -I: no environment, no user site; -S: no site module (the runner needs only the stdlib).
RUNNER_COMMAND = ["python3", "-I", "-S", f"{INPUT_MOUNT}/{RUNNER_FILE}"]
#: How long past a step's own limit the session waits for the runner's word on it.
STEP_GRACE_S = 5.0
_READY_TIMEOUT_S = 30.0
_runner_source: bytes | None = None


def runner_source() -> bytes:
    global _runner_source
    if _runner_source is None:
        _runner_source = Path(__file__).with_name(RUNNER_FILE).read_bytes()
    return _runner_source


# --- planning ------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    argv: list[str]
    timeout_s: float
    stdin: bytes = b""


@dataclass(frozen=True)
class Plan:
    """A run as the runner runs it: its files, the compile (if any), then its cases."""

    spec: RunSpec
    language: Language
    files: list[tuple[str, bytes]]
    limits: Limits
    compile: Step | None
    cases: list[Step]

    def label(self, i: int) -> str | int:
        """What live output of case ``i`` is tagged with: its name, else its index."""
        tests = self.spec.tests
        name = tests[i].name if tests is not None else None
        return name if name is not None else i


#: Test cases one run may have (the contract's maximum).
MAX_TESTS = 64


def check(spec: RunSpec, settings: Settings, default: Limits) -> tuple[Limits, list[tuple[str, bytes]], Language]:
    """Everything about ``spec`` that can be refused before any container exists."""
    limits = spec.limits or default
    files = paths.check_files(spec.files, settings.disk_mb * MIB)
    lang = LANGUAGES.get(spec.language)
    if lang is None:
        raise ValidationError("language", "expected one of " + ", ".join(LANGUAGES))
    if spec.command is not None and (
        not spec.command or not all(isinstance(a, str) and "\0" not in a for a in spec.command)
    ):
        raise ValidationError("command", "expected a non-empty list of strings")
    if not isinstance(spec.stdin, (bytes, bytearray)):
        raise ValidationError("stdin", "expected bytes")
    for name, args in [("args", spec.args), *(("tests[].args", c.args or ()) for c in spec.tests or ()),
                       *(("tests[].command", c.command) for c in spec.tests or () if c.command is not None)]:
        if not all(isinstance(a, str) and "\0" not in a for a in args):
            raise ValidationError(name, "expected a list of strings without NUL")
    if spec.tests is not None and not 1 <= len(spec.tests) <= MAX_TESTS:
        raise ValidationError("tests", f"expected 1..{MAX_TESTS} test cases")
    if spec.compare not in COMPARE_MODES:
        raise ValidationError("compare", "expected one of " + ", ".join(COMPARE_MODES))
    return limits, files, lang


def plan(spec: RunSpec, files: list[tuple[str, bytes]], limits: Limits) -> Plan:
    lang = LANGUAGES[spec.language]
    paths = [p for p, _ in files]
    entry = posixpath.normpath(spec.entrypoint) if spec.entrypoint else lang.default_entry(paths)
    run = list(spec.command) if spec.command else lang.command(entry)
    argv = lang.compile_command(paths, entry)
    compile_step = Step(argv, limits.compile_timeout_s) if argv is not None else None
    if spec.tests is None:
        cases = [Step([*run, *spec.args], limits.timeout_s, spec.stdin)]
    else:
        cases = [
            Step([*(run if c.command is None else c.command), *(spec.args if c.args is None else c.args)],
                 limits.timeout_s, spec.stdin if c.stdin is None else c.stdin)
            for c in spec.tests
        ]
    return Plan(spec, lang, files, limits, compile_step, cases)


# --- a session -----------------------------------------------------------------------

class Session:
    """One runner sandbox. Jobs go one at a time (:meth:`run`); a session whose runner
    stopped answering is ``broken`` and takes no more."""

    def __init__(self, sb: Sandbox, sock: Any, engine: Engine) -> None:
        self.sb = sb
        self._sock = sock
        self._engine = engine
        self._settings = engine.settings()
        self._resources = (sb.limits.memory_mb, sb.limits.pids, sb.limits.cpus)
        send, self._events = trio.open_memory_channel[list[dict[str, Any]] | None](math.inf)
        self._send = send
        self._pending: list[dict[str, Any]] = []
        self.broken = False
        self.ended = False  # the runner's output has ended (it exited, or its container went)
        self.closed = trio.Event()  # set to end the session and remove its sandbox
        self.jobs = 0

    def __repr__(self) -> str:
        return f"<Session {self.sb.container_id[:12]} jobs={self.jobs}{' broken' if self.broken else ''}>"

    # --- the wire --------------------------------------------------------------------
    def pump(self) -> None:
        """In a thread: the runner's stdout as lists of events; None when it ends."""
        from docker.utils.socket import frames_iter

        buf = bytearray()
        err = bytearray()
        try:
            for stream_id, data in frames_iter(self._sock, tty=False):
                if stream_id == 2:
                    err += data
                    continue
                buf += data
                if b"\n" not in data:
                    continue
                *lines, rest = bytes(buf).split(b"\n")
                buf = bytearray(rest)
                events = [_decode(line) for line in lines if line]
                trio.from_thread.run_sync(self._send.send_nowait, events)
        except (OSError, trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.ended = True
            if err:
                log.warning("sandbox runner %s: %s", self.sb.container_id[:12], err.decode(errors="replace")[-2000:])
            with contextlib.suppress(trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError):
                trio.from_thread.run_sync(self._send.send_nowait, None)

    async def _write(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        raw = getattr(self._sock, "_sock", self._sock)
        try:
            await trio.to_thread.run_sync(raw.sendall, data)
        except OSError as exc:
            self.broken = True
            raise SandboxError(f"the sandbox runner is gone: {exc}") from None

    async def _next(self, deadline: float) -> dict[str, Any] | None:
        """The next event, or None when the runner has ended or missed ``deadline``."""
        while not self._pending:
            with trio.move_on_at(deadline):
                try:
                    batch = await self._events.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    batch = None
                if batch is None:
                    self.broken = True
                    return None
                self._pending = batch
                continue
            self.broken = True  # no word from the runner in time
            await self._engine.kill(self.sb)
            return None
        return self._pending.pop(0)

    async def wait_ready(self) -> None:
        ev = await self._next(trio.current_time() + _READY_TIMEOUT_S)
        if ev is None or ev.get("ev") != "ready":
            raise SandboxError(f"the sandbox runner did not start (got {ev!r})")

    async def _set_resources(self, memory_mb: int, pids: int, cpus: float) -> None:
        """The container's memory, process and CPU limits for the next step (``docker update``)."""
        if (memory_mb, pids, cpus) == self._resources:
            return
        api, cid = self._engine.api(), self.sb.container_id
        mem = memory_mb * MIB
        data = {"Memory": mem, "MemorySwap": mem, "PidsLimit": pids + RUNNER_PIDS, "NanoCpus": int(cpus * 1e9)}

        def update() -> None:
            api._raise_for_status(api._post_json(api._url("/containers/{0}/update", cid), data=data))

        await self._engine.call(update)
        self._resources = (memory_mb, pids, cpus)

    # --- a job -----------------------------------------------------------------------
    async def run(self, p: Plan, on_output: OnOutput | None = None) -> ExecutionResult:
        """Compile (if the language does), then run every case; judged."""
        if self.broken:
            raise SandboxError("the sandbox runner is gone")
        self.jobs += 1
        lim = p.limits
        compile_pids = max(lim.pids, self._settings.max_pids)
        if p.compile is not None:
            await self._set_resources(lim.compile_memory_mb, compile_pids, lim.cpus)
        else:
            await self._set_resources(lim.memory_mb, lim.pids, lim.cpus)
        await self._write({
            "op": "job",
            "files": [[path, base64.b64encode(data).decode()] for path, data in p.files],
            "env": dict(p.language.env),
            "compile": _step_msg(p.compile, lim) if p.compile is not None else None,
            "cases": [_step_msg(s, lim) for s in p.cases],
            "output_limit": self._settings.output_limit_bytes,
        })
        compiled: StepResult | None = None
        if p.compile is not None:
            compiled = await self._step("compile", p.compile.timeout_s, None)
            if not self.broken:
                if compile_failed(compiled.termination, compiled.exit_code):
                    await self._write({"op": "stop"})
                else:
                    await self._set_resources(lim.memory_mb, lim.pids, lim.cpus)
                    await self._write({"op": "go"})
        cases: list[CaseResult] = []
        if compiled is None or not compile_failed(compiled.termination, compiled.exit_code):
            tests = p.spec.tests
            for i, step in enumerate(p.cases):
                label = p.label(i)

                def tagged(stream: str, text: str, _case: str | int | None, label: str | int = label) -> None:
                    assert on_output is not None
                    on_output(stream, text, label)

                res = await self._step(i, step.timeout_s, tagged if on_output is not None and tests else on_output)
                if tests is None:
                    cases.append(case_result(None, run_verdict(res.termination, res.exit_code), res))
                    continue
                case = tests[i]
                verdict = case_verdict(res.termination, res.exit_code, res.stdout,
                                       expected_stdout=case.expected_stdout,
                                       expected_exit_code=case.expected_exit_code, compare=p.spec.compare)
                cases.append(case_result(case.name, verdict, res))
        await self._done()
        return judged(compiled, cases, tests=None if p.spec.tests is None else len(p.cases))

    async def _step(self, label: str | int, timeout_s: float, on_output: OnOutput | None) -> StepResult:
        if self.broken:
            return _lost()
        deadline = trio.current_time() + timeout_s + STEP_GRACE_S
        buf = {1: bytearray(), 2: bytearray()}
        dec = {k: codecs.getincrementaldecoder("utf-8")(errors="replace") for k in buf}
        cap = self._settings.output_limit_bytes
        while True:
            ev = await self._next(deadline)
            if ev is None:
                return _lost(buf)
            kind = ev.get("ev")
            if kind == "out" and ev.get("step") == label:
                s = 2 if ev.get("s") == 2 else 1
                data = ev["d"][: max(0, cap - len(buf[s]))]
                buf[s] += data
                if on_output is not None and data:
                    text = dec[s].decode(data)
                    if text:
                        on_output("stderr" if s == 2 else "stdout", text, None)
            elif kind == "end" and ev.get("step") == label:
                return StepResult(
                    exit_code=ev.get("exit_code"),
                    stdout=_text(buf[1]),
                    stderr=_text(buf[2]),
                    duration_ms=float(ev.get("duration_ms") or 0.0),
                    termination=str(ev.get("termination") or "error"),
                    truncated=bool(ev.get("truncated")),
                )
            elif kind == "fail":
                await self._done()
                raise SandboxError(f"the sandbox could not take the run: {ev.get('message')}")
            elif kind == "done":
                self._pending.insert(0, ev)
                return _lost(buf)

    async def _done(self) -> None:
        deadline = trio.current_time() + STEP_GRACE_S
        while not self.broken:
            ev = await self._next(deadline)
            if ev is None or ev.get("ev") == "done":
                return


def _step_msg(step: Step, lim: Limits) -> dict[str, Any]:
    return {
        "argv": step.argv,
        "timeout_s": step.timeout_s,
        "cpu_s": cpu_seconds(step.timeout_s, lim.cpus),
        "stdin": base64.b64encode(step.stdin).decode(),
    }


def _decode(line: bytes) -> dict[str, Any]:
    ev = dict(json.loads(line))
    if ev.get("ev") == "out":
        ev["d"] = base64.b64decode(ev.get("d") or "")
    return ev


def _text(data: bytes | bytearray) -> str:
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(bytes(data))


def _lost(buf: dict[int, bytearray] | None = None) -> StepResult:
    """A step the runner never reported on: it died, or stopped answering."""
    buf = buf or {1: bytearray(), 2: bytearray()}
    return StepResult(None, _text(buf[1]), _text(buf[2]), 0.0, "error", False)


@contextlib.asynccontextmanager
async def serving(sb: Sandbox, engine: Engine) -> AsyncIterator[Session]:
    """Attach to a created runner sandbox, start it, and yield its session once the runner is ready."""
    api = engine.api()
    params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0}
    sock = prepare_stream(await engine.call(api.attach_socket, sb.container_id, params))
    session = Session(sb, sock, engine)
    try:
        async with trio.open_nursery() as nursery:
            async def read() -> None:
                await trio.to_thread.run_sync(session.pump, limiter=engine.readers, abandon_on_cancel=True)

            nursery.start_soon(read)
            await engine.call(api.start, sb.container_id)
            await session.wait_ready()
            yield session
            nursery.cancel_scope.cancel()
    finally:
        shutdown(sock)


def limits_for_start(p: Plan, settings: Settings) -> Limits:
    """The container's limits when a session starts with ``p``: its first step's."""
    if p.compile is None:
        return p.limits
    return replace(p.limits, memory_mb=p.limits.compile_memory_mb, pids=max(p.limits.pids, settings.max_pids))
