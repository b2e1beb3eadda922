"""The running server's state: its services and the facts ``/api/status`` reports.

One :class:`Runtime` per server. ``serve`` (:mod:`.serve`) fills it in dependency
order; the routes read it (:func:`atomic.server.http.runtime`). Reading it never does
I/O: every figure is cached by the object that owns it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__
from ..config import Settings
from ..contract import Agent, QueueInfo, SandboxInfo, Status, Workers
from ..contract import JobSpec, run_limits
from ..contract.decode import check_job, check_language
from ..metrics import Metrics
from ..languages import supported

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from ..agent.supervisor import AgentSupervisor
    from ..ipc.pool import AgentPool
    from ..pipeline.manager import JobManager
    from ..queue import JobQueue
    from ..ratelimit import RateLimiter
    from ..sandbox import SandboxController
    from ..store import ArtifactStore, JobStore


@dataclass
class Runtime:
    """The server's services (set by ``serve`` as each starts) and its lifecycle events."""

    settings: Settings
    metrics: Metrics
    store: JobStore = field(init=False)
    artifacts: ArtifactStore = field(init=False)
    queue: JobQueue = field(init=False)
    agent: AgentPool = field(init=False)
    sandbox: SandboxController = field(init=False)
    manager: JobManager = field(init=False)
    supervisor: AgentSupervisor | None = None  # when the agent is our child
    limiter: RateLimiter | None = None  # ATOMIC_RATE_LIMIT; None: no limit
    app: QuartTrio | None = None
    started_at: float = field(default_factory=time.time)
    shutdown: trio.Event = field(default_factory=trio.Event)
    stopping: trio.Event = field(default_factory=trio.Event)  # WebSockets close with 1001
    urls: list[str] = field(default_factory=list)
    _data_dir: tuple[float, tuple[bool, str]] = (-math.inf, (True, ""))  # (checked at, result)

    # --- what the routes ask ------------------------------------------------------------

    def languages(self) -> list[str]:
        """Languages a job or run may use now: known, and offered by the sandbox image."""
        return supported(self.sandbox.languages())

    def check_language(self, name: str, field: str = "language") -> None:
        """422 ``language_unavailable`` unless the sandbox image offers ``name``."""
        check_language(name, self.sandbox.languages(), field)

    def check_job(self, spec: JobSpec) -> None:
        """Everything about a generate body that is refused before the job exists (422):
        the language offered, the limits, the tests and the test program."""
        self.check_language(spec.language)
        self.sandbox.resolve_limits(run_limits(spec.limits))
        check_job(spec, self.settings.output_limit_bytes)

    def status(self) -> Status:
        """The /api/status document: cached facts only, no I/O."""
        q = self.queue.statistics()
        facts = self.agent.status()
        agent = Agent(healthy=bool(facts.get("healthy")), pool_size=facts["pool_size"],
                      connected=facts["connected"], providers=list(facts.get("providers") or ()))
        if self.supervisor is not None:
            sup = self.supervisor.statistics()
            agent.pid, agent.restarts = sup.pid, sup.restarts
        sandbox = self.sandbox.status()
        reasons = []
        if not agent.healthy:
            reasons.append("agent: not answering")
        if not sandbox.get("available"):
            reasons.append("sandbox: " + (sandbox.get("reason") or "unavailable"))
        data_ok, data_reason = self.data_dir_ok()
        if not data_ok:
            reasons.append("data_dir: " + data_reason)
        doc = Status(
            status="degraded" if reasons else "ok",
            version=__version__,
            uptime_s=round(time.time() - self.started_at, 3),
            languages=self.languages(),
            queue=QueueInfo(depth=q.depth, capacity=q.capacity, by_priority=dict(q.by_priority)),
            workers=Workers(busy=self.manager.busy, total=self.settings.max_concurrent),
            agent=agent,
            sandbox=SandboxInfo(available=bool(sandbox.get("available")), image=sandbox["image"],
                                warm=sandbox.get("warm", 0), reason=sandbox.get("reason")),
            shutting_down=self.manager.shutting_down,
        )
        if reasons:
            doc.reasons = reasons
        return doc

    def data_dir_ok(self) -> tuple[bool, str]:
        """Whether the data dir is usable; re-checked at most every ``status_recheck_s``
        (three system calls were a tenth of a /api/status request)."""
        now = time.monotonic()
        checked, result = self._data_dir
        if now - checked < self.settings.status_recheck_s:
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
        floor = self.settings.data_dir_min_free_mb
        if st.f_bavail * st.f_frsize < floor * 1024 * 1024:
            return False, f"{path} has less than {floor} MiB free"
        return True, ""

    def live(self) -> dict[str, Any]:
        """Figures other objects own, read by the metrics when asked (no I/O)."""
        q = self.queue.statistics()
        out: dict[str, Any] = {
            "queue_depth": q.depth,
            "queue_by_priority": dict(q.by_priority),
            "jobs_by_state": self.manager.counts(),
            "workers_busy": self.manager.busy,
        }
        if hasattr(self, "agent"):
            out["agent_pool"] = dataclasses.asdict(self.agent.statistics())
            out["agent_usage_totals"] = self.agent.agent_facts.get("usage_totals", {})
        if hasattr(self, "sandbox"):
            out["sandbox"] = dataclasses.asdict(self.sandbox.statistics())
        if hasattr(self, "store"):
            out["store"] = dataclasses.asdict(self.store.statistics())
        if self.limiter is not None:
            out["rate_limit"] = dataclasses.asdict(self.limiter.statistics())
        return out


__all__ = ["Runtime"]
