"""The warm pool: started sandboxes waiting for one run each.

Bookkeeping only (decide, then act): the controller asks :meth:`WarmPool.take_nowait`
for a sandbox, and :meth:`WarmPool.to_create` how many to start; it does the Docker
I/O itself and reports back with :meth:`add` / :meth:`creation_failed`. A warm sandbox
has the pool's memory, CPU and process limits (the server defaults), so only runs
asking for exactly those can use one (the wall clock is per run); each is used once
and then destroyed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio

from .limits import Limits, warm_key


@dataclass(frozen=True)
class Sandbox:
    """A container of ours and its host-side input directory."""

    container_id: str
    run_dir: str
    name: str  # directory (and container) name: ``<pid>-<token>``
    limits: Limits
    warm: bool


@dataclass(frozen=True)
class PoolStatistics:
    target: int
    ready: int
    creating: int
    hits: int
    misses: int
    bypassed: int
    created: int
    failed: int


class WarmPool:
    def __init__(self, size: int, limits: Limits) -> None:
        self.size = size
        self.limits = limits
        self._ready: deque[Sandbox] = deque()
        self._creating = 0
        self._hits = self._misses = self._bypassed = self._created = self._failed = 0
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return (
            f"<WarmPool ready={len(self._ready)}/{self.size} creating={self._creating} "
            f"hits={self._hits} misses={self._misses}>"
        )

    def __len__(self) -> int:
        return len(self._ready)

    def eligible(self, limits: Limits) -> bool:
        return self.size > 0 and warm_key(limits) == warm_key(self.limits)

    def take_nowait(self, limits: Limits) -> Sandbox | None:
        """A ready sandbox for a run with ``limits``, or None (counted as a miss or a bypass)."""
        if not self.eligible(limits):
            self._bypassed += 1
            return None
        if not self._ready:
            self._misses += 1
            return None
        self._hits += 1
        # No wake-up here: starting a container competes with the run for the engine,
        # so the controller pokes the filler once the run has ended.
        return self._ready.popleft()

    def to_create(self) -> int:
        """How many sandboxes to start now; they count as being created until reported back."""
        n = max(0, self.size - len(self._ready) - self._creating)
        self._creating += n
        return n

    def add(self, sandbox: Sandbox) -> None:
        self._creating -= 1
        self._created += 1
        self._ready.append(sandbox)

    def creation_failed(self) -> None:
        self._creating -= 1
        self._failed += 1

    def drain(self) -> list[Sandbox]:
        out = list(self._ready)
        self._ready.clear()
        return out

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def poke(self) -> None:
        """Wake the filler (Docker came back, a creation failed...)."""
        self._wake()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            target=self.size,
            ready=len(self._ready),
            creating=self._creating,
            hits=self._hits,
            misses=self._misses,
            bypassed=self._bypassed,
            created=self._created,
            failed=self._failed,
        )
