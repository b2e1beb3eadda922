"""Rate limits per client: a token bucket per API key (per client address without keys).

``ATOMIC_RATE_LIMIT`` (``20/s``, ``600/min``, ``3600/h``) is the rate tokens come back at;
``ATOMIC_RATE_BURST`` (default: one second's worth, at least 1) is the bucket's size, the
requests a client may make at once. A request takes one token; without one it is refused
with 429 ``rate_limited`` and ``Retry-After``: the whole seconds until a token is there.

The bucket is kept as GCRA does it (the "generic cell rate algorithm" of ATM networks, the
same limit as a token bucket): one number per client, the time at which its bucket will
be full again (``tat``). A request at ``now`` fits when ``tat - now <= (burst - 1) / rate``;
then ``tat`` moves on by ``1 / rate``. So a decision is two comparisons and one store, a
refusal knows exactly when the next request will fit, and a client whose ``tat`` has
passed holds nothing: its entry is dropped (the dict is swept when it has doubled).

:class:`RateLimiter` is the interface the server uses, so a limiter shared by every node
(PostgreSQL, with ``ATOMIC_DATABASE_URL``) can stand in for :class:`LocalLimiter`: its
``acquire_nowait`` answers from tokens leased in advance and says ``None`` ("ask me with
``await acquire``") only when a lease has run out. The README's "Rate limits" section
describes it and what it costs per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
}


def parse_rate(text: str) -> float:
    """``"20/s"``, ``"600/min"``, ``"3600/h"`` -> requests per second; ValueError otherwise
    (``0/s``, ``-1``, ``fast``: a rate must be a number above 0 per unit of time)."""
    count, sep, unit = text.strip().partition("/")
    if not sep:
        raise ValueError(text)
    n = float(count.strip())
    u = unit.strip().lower()
    per = _UNITS.get(u) or _UNITS.get(u.removesuffix("s"))  # also "mins", "hours"
    if per is None or not 0 < n < math.inf:
        raise ValueError(text)
    return n / per


def default_burst(rate_per_s: float) -> float:
    """One second's worth of requests, and at least one."""
    return max(1.0, rate_per_s)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds (HTTP has no fractions), rounded up: a client that
    waits that long finds a token."""
    return str(max(1, math.ceil(wait_s - 1e-9)))


@dataclass(frozen=True)
class LimiterStatistics:
    rate_per_s: float
    burst: float
    allowed: int
    limited: int
    keys: int


class RateLimiter(Protocol):
    """What the server asks of a limiter (local now; shared across nodes later)."""

    def acquire_nowait(self, key: str) -> float | None:
        """Take a token for ``key``: 0.0 when the request may go on; the seconds until it
        could when refused; None when this node cannot decide alone (call :meth:`acquire`)."""
        ...

    async def acquire(self, key: str) -> float:
        """As :meth:`acquire_nowait`, asking whatever it shares its buckets with."""
        ...

    def reconfigure(self, rate_per_s: float, burst: float) -> None: ...

    def statistics(self) -> LimiterStatistics: ...


class LocalLimiter:
    """Token buckets in this process's memory; see the module docstring."""

    __slots__ = ("_clock", "_interval", "_sweep_at", "_tat", "_tolerance", "allowed", "burst", "limited", "rate")

    def __init__(self, rate_per_s: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._interval = 0.0  # seconds per token; set by reconfigure
        self._tolerance = 0.0
        self._sweep_at = 1024
        self.allowed = 0
        self.limited = 0
        self.reconfigure(rate_per_s, burst if burst is not None else default_burst(rate_per_s))

    def __repr__(self) -> str:
        return (f"<LocalLimiter {self.rate:g}/s burst={self.burst:g} keys={len(self._tat)} "
                f"allowed={self.allowed} limited={self.limited}>")

    def reconfigure(self, rate_per_s: float, burst: float) -> None:
        """New rate and burst (SIGHUP). Each client keeps the tokens it owes: its debt,
        counted in requests, is paid back at the new rate."""
        if not rate_per_s > 0 or not burst >= 1:
            raise ValueError("a rate above 0 and a burst of at least 1")
        if self._tat:
            now = self._clock()
            scale = (1.0 / rate_per_s) / self._interval
            self._tat = {k: now + (t - now) * scale for k, t in self._tat.items() if t > now}
        self.rate = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tolerance = (burst - 1.0) * self._interval

    def acquire_nowait(self, key: str) -> float:
        now = self._clock()
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        wait = tat - now - self._tolerance
        if wait > 0:
            self.limited += 1
            return wait
        self._tat[key] = tat + self._interval
        self.allowed += 1
        if len(self._tat) > self._sweep_at:
            self._sweep(now)
        return 0.0

    async def acquire(self, key: str) -> float:
        return self.acquire_nowait(key)

    def _sweep(self, now: float) -> None:
        """Forget clients whose bucket is full again (as if never seen)."""
        self._tat = {k: t for k, t in self._tat.items() if t > now}
        self._sweep_at = max(1024, 2 * len(self._tat))

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(rate_per_s=self.rate, burst=self.burst, allowed=self.allowed,
                                 limited=self.limited, keys=len(self._tat))


def from_settings(rate_limit: str | None, rate_burst: float | None) -> LocalLimiter | None:
    """The limiter the settings ask for (None: no limit)."""
    if rate_limit is None:
        return None
    rate = parse_rate(rate_limit)
    return LocalLimiter(rate, rate_burst if rate_burst is not None else default_burst(rate))


__all__ = [
    "LimiterStatistics",
    "LocalLimiter",
    "RateLimiter",
    "default_burst",
    "from_settings",
    "parse_rate",
    "retry_after_header",
]
