"""The running server: its services, started in order in one nursery, and stopped in reverse.

``serve`` is a Trio service (``task_status.started(url)`` once the HTTP socket is bound and
the agent has answered, or start-up gave up waiting for it). Shutdown, on SIGTERM/SIGINT or
the ``shutdown`` event: new work gets 503 ``shutting_down``; running jobs get
``shutdown_grace_s``; WebSockets close with 1001; what still runs is cancelled and stored
as QUEUED for the next start; the agent child is stopped last.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import trio

from .. import __version__
from ..config import Settings
from ..metrics import Metrics

log = logging.getLogger("atomic.server")

DATA_DIR_RECHECK_S = 1.0


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    store: Any = None
    artifacts: Any = None
    queue: Any = None
    agent: Any = None  # AgentPool
    supervisor: Any = None  # AgentSupervisor, when the agent is our child
    sandbox: Any = None
    manager: Any = None
    app: Any = None
    started_at: float = field(default_factory=time.time)
    shutdown: trio.Event = field(default_factory=trio.Event)
    stopping: trio.Event = field(default_factory=trio.Event)  # WebSockets close with 1001
    urls: list[str] = field(default_factory=list)
    _data_dir: tuple[float, tuple[bool, str]] = (-math.inf, (True, ""))  # (checked at, result)

    def status(self, languages: list[str]) -> dict[str, Any]:
        """The /api/status document: cached facts only, no I/O."""
        q = self.queue.statistics()
        agent = self.agent.status()
        if self.supervisor is not None:
            sup = self.supervisor.statistics()
            agent = {**agent, "pid": sup.pid, "restarts": sup.restarts}
        sandbox = self.sandbox.status()
        reasons = []
        if not agent.get("healthy"):
            reasons.append("agent: not answering")
        if not sandbox.get("available"):
            reasons.append("sandbox: " + (sandbox.get("reason") or "unavailable"))
        data_ok, data_reason = self.data_dir_ok()
        if not data_ok:
            reasons.append("data_dir: " + data_reason)
        doc = {
            "status": "degraded" if reasons else "ok",
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 3),
            "languages": languages,
            "queue": {"depth": q.depth, "capacity": q.capacity, "by_priority": dict(q.by_priority)},
            "workers": {"busy": self.manager.busy, "total": self.settings.max_concurrent},
            "agent": agent,
            "sandbox": {k: v for k, v in sandbox.items()},
            "shutting_down": self.manager.shutting_down,
        }
        if reasons:
            doc["reasons"] = reasons
        return doc

    def data_dir_ok(self) -> tuple[bool, str]:
        """Whether the data dir is usable; checked at most once a second (three system
        calls were a tenth of a /api/status request)."""
        now = time.monotonic()
        checked, result = self._data_dir
        if now - checked < DATA_DIR_RECHECK_S:
            return result
        result = self._check_data_dir()
        self._data_dir = (now, result)
        return result

    def _check_data_dir(self) -> tuple[bool, str]:
        path = self.settings.data_dir
        if not os.path.isdir(path):
            return False, f"{path} does not exist"
        if not os.access(path, os.W_OK):
            return False, f"{path} is not writable"
        try:
            st = os.statvfs(path)
        except OSError as exc:
            return False, str(exc)
        if st.f_bavail * st.f_frsize < 64 * 1024 * 1024:
            return False, f"{path} has less than 64 MiB free"
        return True, ""

    def live(self) -> dict[str, Any]:
        """Figures other objects own, read by the metrics when asked (no I/O)."""
        import dataclasses

        q = self.queue.statistics()
        out: dict[str, Any] = {
            "queue_depth": q.depth,
            "queue_by_priority": dict(q.by_priority),
            "jobs_by_state": self.manager.counts(),
            "workers_busy": self.manager.busy,
        }
        if self.agent is not None:
            out["agent_pool"] = dataclasses.asdict(self.agent.statistics())
            out["agent_usage_totals"] = self.agent.agent_facts.get("usage_totals", {})
        if self.sandbox is not None:
            out["sandbox"] = dataclasses.asdict(self.sandbox.statistics())
        if self.store is not None:
            out["store"] = dataclasses.asdict(self.store.statistics())
        return out


async def _start_agent(rt: Runtime, nursery: trio.Nursery) -> None:
    from ..agent.supervisor import AgentSupervisor

    rt.supervisor = AgentSupervisor(rt.settings)
    try:
        await nursery.start(rt.supervisor.run)
    except Exception as exc:  # noqa: BLE001 - the server still serves; status says degraded
        log.error("the agent did not start: %s", exc)


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    handle_signals: bool = True,
    runtime: Runtime | None = None,
    reload: Callable[[], Settings] | None = None,
    freeze_gc: bool = False,
) -> None:
    """Run the whole server until shutdown is asked for.

    ``reload`` re-reads the settings on SIGHUP (the CLI passes its own loader).
    ``freeze_gc`` (the CLI's, for a process that is only this server) moves everything
    alive once serving into the collector's permanent generation: see :func:`_serve_work`.
    """
    import hypercorn.config
    import hypercorn.trio

    from ..ipc.pool import AgentPool
    from ..notify import Notifier
    from ..pipeline.manager import JobManager, Services
    from ..queue import JobQueue
    from ..sandbox import SandboxController
    from ..store import ArtifactStore, JobStore
    from .app import create_app

    # Taken (and removed from the environment) before the agent child copies it.
    notifier = Notifier.from_env(os.environ, unset=True)
    os.makedirs(settings.data_dir, exist_ok=True)
    rt = runtime or Runtime(settings=settings, metrics=Metrics())
    rt.metrics.set_live(rt.live)

    # Services live in a nursery that outside cancellation cannot reach: they stop only
    # after the work (HTTP, workers) has stopped, so a job interrupted by the shutdown
    # can still be stored as QUEUED, whatever the reason for stopping.
    services_scope = trio.CancelScope(shield=True)
    async with trio.open_nursery() as root:
        services: trio.Nursery = await root.start(_host, services_scope)
        try:
            if handle_signals:
                root.start_soon(_signals, rt, root.cancel_scope)
            if reload is not None:
                from functools import partial

                from ..reload import reload_loop

                def forward() -> None:
                    if rt.supervisor is not None and rt.supervisor.send_signal(signal.SIGHUP):
                        log.info("reload: SIGHUP passed to the agent (provider keys)")

                await root.start(partial(reload_loop, reload, partial(_apply, rt),
                                         current=settings, notifier=notifier, on_signal=forward))
            await notifier.status("starting: store, agent, sandbox")
            # In dependency order; each started() means "ready to be used".
            rt.store = JobStore(settings.db_path, cleanup_timeout_s=settings.cleanup_timeout_s)
            await services.start(rt.store.run)
            rt.artifacts = ArtifactStore(settings.artifacts_dir)
            if settings.agent == "child":
                await _start_agent(rt, services)
            rt.agent = AgentPool(settings)
            await services.start(rt.agent.run)
            rt.sandbox = SandboxController(settings)
            await services.start(rt.sandbox.run)
            rt.queue = JobQueue(settings.max_queue_size, settings.aging_s)
            rt.manager = JobManager(
                Services(settings, rt.agent, rt.sandbox, rt.store, rt.artifacts, rt.queue, rt.metrics)
            )
            await _serve_work(rt, create_app, hypercorn, notifier, task_status, freeze_gc)
        finally:
            log.info("stopped serving; stopping services")
            services_scope.cancel()
        root.cancel_scope.cancel()


async def _serve_work(rt: Runtime, create_app: Any, hypercorn: Any, notifier: Any,
                      task_status: trio.TaskStatus[list[str]], freeze_gc: bool = False) -> None:
    """The HTTP server and the job workers, until a graceful shutdown ends them."""
    from ..notify import watchdog_loop

    settings = rt.settings
    async with trio.open_nursery() as work:
        await work.start(rt.manager.run)
        app = rt.app = create_app(rt)
        hconf = hypercorn.config.Config()
        binds = [f"{settings.host}:{settings.http_port}"]
        if settings.ws_port is not None and settings.ws_port != settings.http_port:
            binds.append(f"{settings.host}:{settings.ws_port}")
        hconf.bind = binds
        hconf.graceful_timeout = 2.0
        hconf.accesslog = None
        hconf.errorlog = logging.getLogger("hypercorn.error")
        hconf.keep_alive_timeout = 75
        hconf.backlog = 1024

        async def _shutdown_trigger() -> None:
            await rt.shutdown.wait()
            with trio.move_on_after(settings.cleanup_timeout_s, shield=True):
                await notifier.stopping()
            log.info("shutting down: no new work; %d pipeline(s) get %.0f s",
                     rt.manager.busy, settings.shutdown_grace_s)
            await rt.manager.drain(settings.shutdown_grace_s)
            rt.stopping.set()  # WebSockets close with 1001
            await trio.sleep(0.05)

        async def _http(task_status: trio.TaskStatus[list[str]]) -> None:
            from .fast import FastPaths

            await hypercorn.trio.serve(FastPaths(app, rt), hconf, shutdown_trigger=_shutdown_trigger,
                                       task_status=task_status)
            # Serving has ended gracefully: stop the workers, which store any job
            # still running as QUEUED for the next start.
            work.cancel_scope.cancel()

        rt.urls = await work.start(_http)
        log.info("Atomic %s serving on %s", __version__, ", ".join(rt.urls))
        if freeze_gc:
            # Everything alive now (modules, the app, its routes) lives as long as the
            # process: keep it out of the collector, so a full collection walks only what
            # requests and jobs made since, not ~60k startup objects (a 40 ms pause here).
            gc.freeze()
            # Young collections every 10,000 net allocations instead of 700: at 466
            # requests/s that is 2 pauses in 20 s instead of ~75 (each ~1.3 ms, up to
            # 4 ms), so far fewer requests wait behind one. Reference counting frees
            # almost everything a request makes; only cycles wait for the collector.
            gc.set_threshold(10_000, 10, 10)
        await notifier.ready(status=f"serving on {', '.join(rt.urls)}")
        # The watchdog proves the event loop runs; a degraded dependency is reported in
        # /api/status, not "fixed" by a restart.
        work.start_soon(watchdog_loop, notifier, lambda: not rt.shutdown.is_set())
        task_status.started(rt.urls)


async def _host(scope: trio.CancelScope, *, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    with scope:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()


def _apply(rt: Runtime, new: Settings, changes: dict[str, Any]) -> None:
    """Put reloaded settings into effect (only reloadable keys differ in ``new``)."""
    from ..reload import apply_logging

    apply_logging(new, changes)
    rt.settings = new
    if rt.manager is not None:
        rt.manager.settings = new
        rt.manager.s.settings = new
    if rt.sandbox is not None:
        rt.sandbox.reconfigure(new)


async def _signals(rt: Runtime, everything: trio.CancelScope) -> None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: stop now, skipping the grace
    period (running jobs are still stored as QUEUED; cleanup stays bounded)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if rt.shutdown.is_set():
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                everything.cancel()
                return
            log.info("%s received", signal.Signals(signum).name)
            rt.shutdown.set()
