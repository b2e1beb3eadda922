"""Starting and stopping the server: its services, in order in one nursery, stopped in reverse.

``serve`` is a Trio service (``task_status.started(urls)`` once the HTTP socket is bound
and the agent has answered, or start-up gave up waiting for it). Shutdown, on
SIGTERM/SIGINT or the ``shutdown`` event: new work gets 503 ``shutting_down``; running
jobs get ``shutdown_grace_s``; WebSockets close with 1001; what still runs is cancelled
and stored as QUEUED for the next start; the agent child is stopped last.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import hypercorn.config
import hypercorn.trio
import trio

from .. import __version__, ratelimit, tracing
from ..config import Settings
from ..metrics import Metrics
from ..notify import Notifier, watchdog_loop
from ..tls import ALPN
from .state import Runtime

log = logging.getLogger("atomic.server")


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
    from ..ipc.pool import AgentPool
    from ..pipeline.manager import JobManager
    from ..pipeline.services import Services
    from ..queue import JobQueue
    from ..sandbox import SandboxController
    from ..store import ArtifactStore, JobStore

    # Taken (and removed from the environment) before the agent child copies it.
    notifier = Notifier.from_env(os.environ, unset=True)
    os.makedirs(settings.data_dir, exist_ok=True)
    rt = runtime or Runtime(settings=settings, metrics=Metrics())
    rt.metrics.set_live(rt.live)
    if rt.limiter is None:
        rt.limiter = ratelimit.from_settings(settings.rate_limit, settings.rate_burst)

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
            rt.queue = JobQueue(settings.max_queue_size, settings.aging_s,
                                drain_window_s=settings.queue_drain_window_s,
                                retry_after_max_s=settings.queue_retry_after_max_s)
            rt.manager = JobManager(  # the agent and sandbox as jobs see them: traced when tracing is on
                Services(settings, tracing.traced_agent(rt.agent), tracing.traced_sandbox(rt.sandbox), rt.store,
                         rt.artifacts, rt.queue, rt.metrics)
            )
            await _serve_work(rt, notifier, task_status, freeze_gc)
        finally:
            log.info("stopped serving; stopping services")
            services_scope.cancel()
        root.cancel_scope.cancel()


async def _serve_work(rt: Runtime, notifier: Notifier, task_status: trio.TaskStatus[list[str]],
                      freeze_gc: bool = False) -> None:
    """The HTTP server and the job workers, until a graceful shutdown ends them."""
    from .app import create_app
    from .fast import FastPaths

    settings = rt.settings
    async with trio.open_nursery() as work:
        await work.start(rt.manager.run)
        app = rt.app = create_app(rt)
        hconf = hypercorn.config.Config()
        binds = [f"{settings.host}:{settings.http_port}"]
        if settings.ws_port is not None and settings.ws_port != settings.http_port:
            binds.append(f"{settings.host}:{settings.ws_port}")
        hconf.bind = binds
        hconf.graceful_timeout = settings.http_graceful_s
        hconf.accesslog = None
        hconf.errorlog = logging.getLogger("hypercorn.error")
        hconf.keep_alive_timeout = settings.http_keep_alive_s
        hconf.backlog = settings.http_backlog
        if settings.tls_cert is not None and settings.tls_key is not None:
            # HTTPS and WSS on every bind, HTTP/2 by ALPN: Hypercorn's own TLS (the files
            # were checked when the settings were loaded: atomic.tls.problems).
            hconf.certfile = settings.tls_cert
            hconf.keyfile = settings.tls_key
            hconf.alpn_protocols = list(ALPN)

        async def _shutdown_trigger() -> None:
            await rt.shutdown.wait()
            with trio.move_on_after(settings.cleanup_timeout_s, shield=True):
                await notifier.stopping()
            log.info("shutting down: no new work; %d pipeline(s) get %.0f s",
                     rt.manager.busy, settings.shutdown_grace_s)
            await rt.manager.drain(settings.shutdown_grace_s)
            rt.stopping.set()  # WebSockets close with 1001
            await trio.sleep(0.05)  # ... and their close frames leave before serving stops

        async def _http(task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn.trio.serve(cast(Any, FastPaths(app, rt)), hconf, shutdown_trigger=_shutdown_trigger,
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
    if hasattr(rt, "manager"):
        rt.manager.settings = new
        rt.manager.s.settings = new
    if hasattr(rt, "sandbox"):
        rt.sandbox.reconfigure(new)
    if "rate_limit" in changes or "rate_burst" in changes:
        if new.rate_limit is None:
            rt.limiter = None
        else:
            rate = ratelimit.parse_rate(new.rate_limit)
            burst = new.rate_burst if new.rate_burst is not None else ratelimit.default_burst(rate)
            if rt.limiter is None:
                rt.limiter = ratelimit.LocalLimiter(rate, burst)
            else:
                rt.limiter.reconfigure(rate, burst)


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
