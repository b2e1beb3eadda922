"""The sandbox controller: runs a program in a confined Docker container, from Trio.

Two ways to run:

* **direct** (cold): create a container whose command is the program, attach, start.
* **exec**: a container started ahead with ``sleep infinity`` (a warm one from the pool,
  or a fresh one when the run collects files), the program started with ``docker exec``.

Either way the program is ``sh -c 'cp inputs to /workspace && exec "$@" < /atomic/stdin'``
as uid 10001: the inputs come through a read-only bind mount of a per-run host
directory, the workspace is a size-limited tmpfs (see :mod:`.limits`). The wall clock,
the output caps and cancellation are enforced from the Trio side by killing the whole
container (:mod:`.run` supervises one run and names how it ended); every container is
removed afterwards, shielded and bounded.

This module holds the controller's side: the service (health, reaping, the warm pool),
creating and removing containers, and choosing how each run goes. Every Docker SDK
call runs in a worker thread under one ``CapacityLimiter``; only calls without side
effects are abandoned on cancellation. Docker's exceptions are translated into
:class:`~atomic.errors.SandboxError` / :class:`~atomic.errors.SandboxUnavailable` as
they leave that thread (see :mod:`.engine`), and nowhere else in the server.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from ..backoff import backoff
from ..config import Settings
from ..errors import SandboxError, SandboxUnavailable, ValidationError
from . import paths, reaper
from .engine import open_client, translate
from .image import languages_from_labels
from .limits import MIB, USER, WORKSPACE, Limits, default_limits, host_config_kwargs, resolve_limits
from .pool import PoolStatistics, Sandbox, WarmPool
from .run import (
    TERMINATIONS,
    ExecutionResult,
    OnOutput,
    RunSpec,
    cgroup_counters,
    prepare_stream,
    shutdown,
    supervise,
    verdict,
    wrapper,
)

log = logging.getLogger(__name__)
T = TypeVar("T")



@dataclass(frozen=True)
class SandboxStatistics:
    available: bool
    runs_active: int
    runs_total: int
    runs_by_termination: dict[str, int]
    containers_alive: int
    warm_ready: int
    warm_target: int
    warm_hits: int
    warm_misses: int
    warm_bypassed: int
    reaped: int
    engine_errors: int
    pool: PoolStatistics



def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(lambda e: isinstance(e, trio.Cancelled)) is not None
    return False


class SandboxController:
    """Runs programs in sandboxes; ``run`` is its service (health, reaping, warm pool)."""

    def __init__(self, settings: Settings, *, docker_url: str | None = None) -> None:
        self._settings = settings
        self._docker_url = docker_url or settings.docker_host
        self._limiter = trio.CapacityLimiter(settings.threads)
        self._readers = trio.CapacityLimiter(math.inf)  # stream readers block for a whole run
        self._client: Any = None
        self._available = False
        self._reason: str | None = "not checked yet"
        self._first_probe = trio.Event()  # set once Docker has been asked at least once
        self._last_start = -math.inf  # when the latest run started (trio clock)
        self._languages: list[str] = []
        self._last_probe = -math.inf
        self._pool = WarmPool(settings.warm_pool_size, default_limits(settings))
        self._in_use: set[str] = set()  # container ids and run directory names we own
        self._nursery: trio.Nursery | None = None
        self._health_wakeup = trio.Event()
        self._pid = os.getpid()
        self.owner = f"{self._pid}-{secrets.token_hex(4)}"
        """This controller's ``io.atomic.owner`` label; input directories start with it."""
        self._work_root = reaper.work_root(settings)
        self._active = 0
        self._runs: dict[str, int] = {t: 0 for t in TERMINATIONS}
        self._reaped = 0
        self._engine_errors = 0

    def __repr__(self) -> str:
        state = "available" if self._available else f"unavailable ({self._reason})"
        return (
            f"<SandboxController {self._settings.sandbox_image} {state} active={self._active} "
            f"containers={self._containers_alive()} pool={self._pool!r}>"
        )

    # --- cached views ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "available": self._available,
            "image": self._settings.sandbox_image,
            "warm": len(self._pool),
            "reason": self._reason,
        }

    def languages(self) -> list[str]:
        return list(self._languages)

    def resolve_limits(self, user: dict[str, Any] | None) -> Limits:
        return resolve_limits(self._settings, user)

    def reconfigure(self, settings: Settings) -> None:
        """Take reloaded limits (defaults, maxima, output cap). Warm containers made with
        the old defaults are still used only by runs whose limits match them."""
        self._settings = settings

    def statistics(self) -> SandboxStatistics:
        pool = self._pool.statistics()
        return SandboxStatistics(
            available=self._available,
            runs_active=self._active,
            runs_total=sum(self._runs.values()),
            runs_by_termination=dict(self._runs),
            containers_alive=self._containers_alive(),
            warm_ready=pool.ready,
            warm_target=pool.target,
            warm_hits=pool.hits,
            warm_misses=pool.misses,
            warm_bypassed=pool.bypassed,
            reaped=self._reaped,
            engine_errors=self._engine_errors,
            pool=pool,
        )

    def _containers_alive(self) -> int:
        return sum(1 for x in self._in_use if len(x) == 64)

    # --- the Docker boundary -----------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, abandon: bool = False) -> T:
        """``fn(*args)`` in a worker thread; Docker's exceptions become ours."""
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=abandon)
        except Exception as exc:  # noqa: BLE001 - translated at this boundary
            err = translate(exc, self._settings.sandbox_image)
            if isinstance(err, SandboxUnavailable):
                self._mark_unavailable(err.message)
            else:
                self._engine_errors += 1
            raise err from None

    def _api(self) -> Any:
        if self._client is None:
            self._client = open_client(self._docker_url, timeout=self._settings.max_timeout_s + 120)
        return self._client.api

    def _probe_sync(self) -> list[str]:
        api = self._api()
        api.ping()
        info = api.inspect_image(self._settings.sandbox_image)
        return languages_from_labels((info.get("Config") or {}).get("Labels"))

    async def _probe(self) -> bool:
        """Check the engine and the image; update the cached status. Never raises SandboxError."""
        self._last_probe = trio.current_time()
        try:
            langs = await self._call(self._probe_sync, abandon=True)
        except SandboxError as exc:
            self._mark_unavailable(exc.message)
            return False
        finally:
            self._first_probe.set()
        if not self._available:
            log.info("sandbox available: %s", self._settings.sandbox_image)
        self._available, self._reason, self._languages = True, None, langs
        self._pool.poke()
        return True

    def _mark_unavailable(self, reason: str) -> None:
        if self._available:
            log.warning("sandbox unavailable: %s", reason)
        self._available, self._reason = False, reason
        self._health_wakeup.set()

    async def _require_available(self) -> None:
        if not self._first_probe.is_set():
            # Just started: the first probe is under way; its answer, not a guess.
            if self._nursery is not None:
                await self._first_probe.wait()
            else:
                await self._probe()
        if not self._available and trio.current_time() - self._last_probe > 1.0:
            await self._probe()
        if not self._available:
            raise SandboxUnavailable(f"sandbox unavailable: {self._reason}")

    # --- the service -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the sandbox healthy: probe and reap, fill the warm pool, dispose of containers.

        Reports started at once (the first probe runs in the background), so a server
        comes up even when Docker is down; ``status()`` tells when it is.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._health_loop)
                nursery.start_soon(self._fill_loop, nursery)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):  # each removal is bounded
                async with trio.open_nursery() as cleanup:
                    for sb in self._pool.drain():
                        cleanup.start_soon(self._remove, sb)
                # Last sweep: anything of ours a failed removal left (say, during a Docker
                # outage) goes now, if the engine answers within the cleanup bound.
                if self._available:
                    with trio.move_on_after(self._settings.cleanup_timeout_s):
                        await self.reap()

    async def _health_loop(self) -> None:
        failures = 0
        while True:
            if await self._probe():
                failures = 0
                await self.reap()
                with trio.move_on_after(self._settings.reap_interval_s):
                    await self._health_wakeup.wait()
            else:
                await trio.sleep(backoff(failures, self._settings.sandbox_retry_s, self._settings.sandbox_retry_cap_s))
                failures += 1
            self._health_wakeup = trio.Event()

    async def _fill_loop(self, nursery: trio.Nursery) -> None:
        while True:
            if self._available:
                # The pool refills only after a quiet spell: under a steady stream of runs a
                # refill costs the engine as much as a cold start and competes with the runs.
                quiet = self._last_start + self._settings.warm_refill_quiet_s - trio.current_time()
                if quiet > 0:
                    await trio.sleep(quiet)
                    continue
                for _ in range(self._pool.to_create()):
                    nursery.start_soon(self._make_warm)
            await self._pool.wait_changed()

    async def _make_warm(self) -> None:
        try:
            sb = await self._create_sleeper(self._pool.limits, None, warm=True)
        except SandboxError as exc:
            self._pool.creation_failed()
            log.warning("could not start a warm sandbox: %s", exc)
            if self._available:
                await trio.sleep(1.0)  # an engine error: do not spin
                self._pool.poke()
            return
        self._pool.add(sb)

    async def reap(self) -> int:
        """Remove our containers no run is using, and those of dead Atomic processes."""
        try:
            listed, names = await self._call(reaper.list_candidates, self._api(), self._work_root, abandon=True)
            # Decide here, against the live bookkeeping: a sandbox being created meanwhile
            # is registered by name before it exists, so it is never taken for an orphan.
            ids = reaper.select_orphans(listed, own_pid=self._pid, in_use=self._in_use, owner=self.owner)
            dirs = reaper.select_work_dirs(names, own_pid=self._pid, in_use=self._in_use, owner=self.owner)
            if not ids and not dirs:
                return 0
            n = await self._call(reaper.remove_orphans, self._api(), ids, self._work_root, dirs)
        except SandboxError as exc:
            log.warning("reaping failed: %s", exc)
            return 0
        self._reaped += n
        return n

    # --- containers --------------------------------------------------------------------

    def _new_name(self) -> str:
        return f"{self.owner}-{secrets.token_hex(6)}"

    def _create_sync(self, name: str, run_dir: str, limits: Limits, job_id: str | None, command: list[str], role: str) -> str:
        api = self._api()
        labels = {
            reaper.MANAGED: "1",
            reaper.PID: str(self._pid),
            reaper.HOST: reaper.HOSTNAME,
            reaper.ROLE: role,
            reaper.OWNER: self.owner,
        }
        if job_id:
            labels[reaper.JOB] = job_id
        host_config = api.create_host_config(**host_config_kwargs(self._settings, limits, run_dir))
        created = api.create_container(
            self._settings.sandbox_image,
            command=command,
            user=USER,
            working_dir=WORKSPACE,
            labels=labels,
            name=f"atomic-{name}",
            network_disabled=True,
            host_config=host_config,
        )
        return str(created["Id"])

    async def _new_sandbox(self, limits: Limits, job_id: str | None, command: list[str], role: str, warm: bool) -> Sandbox:
        name = self._new_name()
        self._in_use.add(name)
        try:
            run_dir = await trio.to_thread.run_sync(paths.make_run_dir, self._work_root, name)
            cid = await self._call(self._create_sync, name, run_dir, limits, job_id, command, role)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(paths.remove_run_dir, os.path.join(self._work_root, name))
            self._in_use.discard(name)
            raise
        self._in_use.add(cid)
        return Sandbox(container_id=cid, run_dir=run_dir, name=name, limits=limits, warm=warm)

    async def _create_sleeper(self, limits: Limits, job_id: str | None, *, warm: bool) -> Sandbox:
        sb = await self._new_sandbox(limits, job_id, ["sleep", "infinity"], "warm" if warm else "exec", warm)
        try:
            await self._call(self._api().start, sb.container_id)
        except BaseException:
            await self._remove(sb)
            raise
        return sb

    async def _kill(self, sb: Sandbox) -> None:
        import docker.errors

        def kill() -> None:
            try:
                self._api().kill(sb.container_id)
            except docker.errors.APIError as exc:  # already stopped: nothing to kill
                if exc.status_code not in (404, 409):
                    raise

        await self._call(kill)

    async def _remove(self, sb: Sandbox) -> None:
        """Kill and remove the container and its input directory. Idempotent."""
        import docker.errors

        def remove() -> None:
            try:
                self._api().remove_container(sb.container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
            paths.remove_run_dir(sb.run_dir)

        try:
            # Removal is idempotent and the reaper backs it up, so the cleanup deadline may
            # abandon it: the thread still finishes, we only stop waiting.
            with trio.move_on_after(self._settings.cleanup_timeout_s, shield=True):
                await self._call(remove, abandon=True)
        except SandboxError as exc:
            log.warning("could not remove sandbox %s: %s", sb.container_id[:12], exc)
        finally:
            self._in_use.discard(sb.container_id)
            self._in_use.discard(sb.name)

    def _dispose(self, sb: Sandbox) -> None:
        """Remove ``sb`` in the background (the service's nursery), a little later."""
        assert self._nursery is not None
        self._nursery.start_soon(self._remove_later, sb)

    async def _remove_later(self, sb: Sandbox) -> None:
        try:
            # Removal costs the engine ~100 ms of CPU while the job that used the container
            # has a few ms left (archives, the final commit): the job goes first.
            await trio.sleep(self._settings.sandbox_dispose_s)
        finally:  # a shutdown cancels the pause, never the removal
            await self._remove(sb)

    # --- runs --------------------------------------------------------------------------

    async def execute(self, spec: RunSpec, on_output: OnOutput | None = None) -> ExecutionResult:
        """Run ``spec`` to completion. Program failures are results, not exceptions.

        Raises ValidationError (bad files or command, before any container),
        SandboxUnavailable (no engine or image) or SandboxError (engine failure).
        If cancelled, the container is killed and removed before Cancelled propagates.
        """
        limits = spec.limits or self._pool.limits
        files = paths.check_files(spec.files, self._settings.disk_mb * MIB)
        if not spec.command or not all(isinstance(a, str) and "\0" not in a for a in spec.command):
            raise ValidationError("command", "expected a non-empty list of strings")
        if not isinstance(spec.stdin, (bytes, bytearray)):
            raise ValidationError("stdin", "expected bytes")
        await self._require_available()

        sb = self._pool.take_nowait(limits)
        self._last_start = trio.current_time()
        self._active += 1
        termination = "error"
        try:
            if sb is not None or spec.collect:
                if sb is None:
                    sb = await self._create_sleeper(limits, spec.job_id, warm=False)
                result = await self._run_exec(sb, spec, files, limits, on_output)
            else:
                command = wrapper(spec.command, limits)
                sb = await self._new_sandbox(limits, spec.job_id, command, "run", warm=False)
                result = await self._run_direct(sb, spec, files, limits, on_output)
            termination = result.termination
            return result
        except BaseException as exc:
            if _is_cancellation(exc):
                termination = "cancelled"
            raise
        finally:
            self._active -= 1
            self._runs[termination] += 1
            if sb is not None:
                if self._nursery is not None and termination not in ("cancelled", "error"):
                    self._dispose(sb)  # the result need not wait for the removal
                else:
                    await self._remove(sb)  # shielded and bounded inside
            if self._pool.size:
                self._pool.poke()

    async def _run_direct(
        self, sb: Sandbox, spec: RunSpec, files: list[tuple[str, bytes]], limits: Limits, on_output: OnOutput | None
    ) -> ExecutionResult:
        await trio.to_thread.run_sync(paths.write_inputs, sb.run_dir, files, bytes(spec.stdin), limiter=self._limiter)
        api = self._api()
        params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}
        sock = prepare_stream(await self._call(api.attach_socket, sb.container_id, params))

        async def exit_code() -> int | None:
            # Side-effect free, so abandoned if the deadline passes first.
            info = await self._call(api.wait, sb.container_id, abandon=True)
            return info.get("StatusCode")

        t0 = time.perf_counter()
        try:
            await self._call(api.start, sb.container_id)
            out, killed, counters, code = await supervise(
                sb, sock, limits, on_output, exit_code, self._kill, settings=self._settings, readers=self._readers
            )
        finally:
            shutdown(sock)
        duration = (time.perf_counter() - t0) * 1000
        oom = bool(counters and counters[0])
        if not oom and code is not None and code >= 128:
            state = await self._call(api.inspect_container, sb.container_id, abandon=True)
            oom = bool(state["State"].get("OOMKilled"))
        # The cgroup is gone once the container exits: stderr is the fallback witness.
        return verdict(code, out, killed, oom, counters, duration, [], final_counters=False)

    async def _run_exec(
        self, sb: Sandbox, spec: RunSpec, files: list[tuple[str, bytes]], limits: Limits, on_output: OnOutput | None
    ) -> ExecutionResult:
        await trio.to_thread.run_sync(paths.write_inputs, sb.run_dir, files, bytes(spec.stdin), limiter=self._limiter)
        api = self._api()
        cmd = wrapper(spec.command, limits)
        create = functools.partial(api.exec_create, sb.container_id, cmd, user=USER, workdir=WORKSPACE)
        exec_id = (await self._call(create))["Id"]

        async def exit_code() -> int | None:
            # The output can end before the process does (it may close its descriptors).
            while True:
                info = await self._call(api.exec_inspect, exec_id, abandon=True)
                if not info.get("Running"):
                    return info.get("ExitCode")
                await trio.sleep(0.02)

        t0 = time.perf_counter()
        sock = prepare_stream(await self._call(lambda: api.exec_start(exec_id, socket=True)))
        try:
            out, killed, counters, code = await supervise(
                sb, sock, limits, on_output, exit_code, self._kill, settings=self._settings, readers=self._readers
            )
        finally:
            shutdown(sock)
        duration = (time.perf_counter() - t0) * 1000
        final = cgroup_counters(sb.container_id) if killed is None else None
        counters = final if final is not None else counters
        oom = bool(counters and counters[0])
        if not oom and killed is None and counters is None and code is not None and code >= 128:
            # No cgroup view: the engine records an OOM kill once the container stops.
            await self._kill(sb)
            state = await self._call(api.inspect_container, sb.container_id, abandon=True)
            oom = bool(state["State"].get("OOMKilled"))
        files_out: list[tuple[str, bytes]] = []
        if spec.collect and killed is None and not oom:
            files_out = await self._collect(sb, dict(files))
        return verdict(code, out, killed, oom, counters, duration, files_out, final_counters=final is not None)

    async def _collect(self, sb: Sandbox, inputs: dict[str, bytes]) -> list[tuple[str, bytes]]:
        """What the program left in the workspace: regular files only, never followed links."""
        import io

        api = self._api()
        cap = self._settings.disk_mb * MIB
        tar = ["tar", "-C", WORKSPACE, "-cf", "-", "."]
        exec_id = (await self._call(functools.partial(api.exec_create, sb.container_id, tar, user=USER)))["Id"]
        sock = prepare_stream(await self._call(lambda: api.exec_start(exec_id, socket=True)))

        def read_all() -> bytes:
            from docker.utils.socket import frames_iter

            data = bytearray()
            for stream_id, chunk in frames_iter(sock, tty=False):
                if stream_id == 1 and len(data) <= cap + (1 << 20):
                    data += chunk
            return bytes(data)

        try:
            blob = await trio.to_thread.run_sync(read_all, limiter=self._readers, abandon_on_cancel=True)
        except OSError as exc:
            raise SandboxError(f"collecting the workspace failed: {exc}") from None
        finally:
            shutdown(sock)
        try:
            files_out, _ = paths.read_tar_files(io.BytesIO(blob), inputs, cap)
        except Exception as exc:  # noqa: BLE001 - a torn archive (workspace still changing)
            log.warning("workspace archive unreadable: %s", exc)
            return []
        return files_out
