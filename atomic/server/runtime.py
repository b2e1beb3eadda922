"""The running server: its services, started in order in one nursery, and stopped in reverse.

``serve`` is a Trio service (``task_status.started(url)`` once the HTTP socket is bound and
the agent has answered, or start-up gave up waiting for it). Shutdown, on SIGTERM/SIGINT or
the ``shutdown`` event: new work gets 503 ``shutting_down``; running jobs get
``shutdown_grace_s``; WebSockets close with 1001; what still runs is cancelled and stored
as QUEUED for the next start; the agent child is stopped last.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import __version__
from ..config import Settings
from ..metrics import Metrics

log = logging.getLogger("atomic.server")


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
        q = self.queue.statistics()
        return {
            "queue_depth": q.depth,
            "queue_by_priority": dict(q.by_priority),
            "jobs_by_state": self.manager.counts(),
            "workers_busy": self.manager.busy,
        }


async def _start_agent(rt: Runtime, nursery: trio.Nursery) -> None:
    from ..agent.supervisor import AgentSupervisor

    rt.supervisor = AgentSupervisor(rt.settings)
    try:
        await nursery.start(rt.supervisor.run)
    except Exception as exc:  # the server still serves; status says degraded
        log.error("the agent did not start: %s", exc)


async def serve(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    handle_signals: bool = True,
    runtime: Runtime | None = None,
) -> None:
    """Run the whole server until shutdown is asked for."""
    import hypercorn.config
    import hypercorn.trio

    from ..ipc.pool import AgentPool
    from ..pipeline.manager import JobManager, Services
    from ..queue import JobQueue
    from ..sandbox import SandboxController
    from ..store import ArtifactStore, JobStore
    from .app import create_app

    os.makedirs(settings.data_dir, exist_ok=True)
    rt = runtime or Runtime(settings=settings, metrics=Metrics())
    rt.metrics.set_live(rt.live)

    async with trio.open_nursery() as root:
        if handle_signals:
            root.start_soon(_signals, rt)
        # Services, in dependency order. Each one's started() means "ready to be used".
        rt.store = JobStore(settings.db_path)
        await root.start(rt.store.run)
        rt.artifacts = ArtifactStore(settings.artifacts_dir)
        if settings.agent == "child":
            await _start_agent(rt, root)
        rt.agent = AgentPool(settings)
        await root.start(rt.agent.run)
        rt.sandbox = SandboxController(settings)
        await root.start(rt.sandbox.run)
        rt.queue = JobQueue(settings.max_queue_size, settings.aging_s)
        rt.manager = JobManager(
            Services(settings, rt.agent, rt.sandbox, rt.store, rt.artifacts, rt.queue, rt.metrics)
        )

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
                log.info("shutting down: no new work; %d pipeline(s) get %.0f s",
                         rt.manager.busy, settings.shutdown_grace_s)
                await rt.manager.drain(settings.shutdown_grace_s)
                rt.stopping.set()  # WebSockets close with 1001
                await trio.sleep(0.05)

            async def _http(task_status: trio.TaskStatus[list[str]]) -> None:
                await hypercorn.trio.serve(app, hconf, shutdown_trigger=_shutdown_trigger, task_status=task_status)
                # Serving has ended gracefully: stop the workers, which store any job
                # still running as QUEUED for the next start.
                work.cancel_scope.cancel()

            rt.urls = await work.start(_http)
            log.info("Atomic %s serving on %s", __version__, ", ".join(rt.urls))
            task_status.started(rt.urls)
        log.info("stopped serving; stopping services")
        root.cancel_scope.cancel()


async def _signals(rt: Runtime) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if rt.shutdown.is_set():
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                raise KeyboardInterrupt
            log.info("%s received", signal.Signals(signum).name)
            rt.shutdown.set()
