"""Metrics: one recorder, two views (JSON for ``/api/metrics``, Prometheus for ``/metrics``).

Prometheus series live in a registry owned by each :class:`Metrics` (never the global
one, so tests and several apps in one process do not collide). Percentiles for the JSON
view come from small bounded reservoirs of recent samples, so memory stays constant
however long the server runs.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STAGE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Reservoir:
    """A uniform sample of at most ``size`` recent-ish observations (Vitter's algorithm R)."""

    __slots__ = ("count", "samples", "size", "total")

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self.samples: list[float] = []
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if len(self.samples) < self.size:
            self.samples.append(value)
        else:
            i = random.randrange(self.count)
            if i < self.size:
                self.samples[i] = value

    def summary(self, scale: float = 1000.0) -> dict[str, float | int]:
        """count, mean and percentiles, scaled (seconds -> ms by default)."""
        if not self.samples:
            return {"count": self.count}
        ordered = sorted(self.samples)

        def pct(p: float) -> float:
            k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
            return round(ordered[k] * scale, 3)

        return {
            "count": self.count,
            "mean": round(self.total / self.count * scale, 3),
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(ordered[-1] * scale, 3),
        }


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "atomic_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "atomic_http_request_duration_seconds", "HTTP request latency", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.jobs_total = Counter("atomic_jobs", "Jobs that reached a terminal state", ["state"], registry=r)
        self.jobs_accepted = Counter("atomic_jobs_accepted", "Jobs accepted", registry=r)
        self.stage_duration = Histogram(
            "atomic_stage_duration_seconds", "Pipeline stage durations", ["stage"],
            buckets=STAGE_BUCKETS, registry=r,
        )
        self.queue_wait_hist = Histogram(
            "atomic_queue_wait_seconds", "Time jobs wait in the queue", buckets=STAGE_BUCKETS, registry=r
        )
        self.ws_connections = Gauge("atomic_websocket_connections", "Open WebSocket connections", registry=r)
        self.tokens_total = Counter(
            "atomic_tokens", "Model tokens", ["provider", "model", "kind"], registry=r
        )
        self.sandbox_runs = Counter(
            "atomic_sandbox_runs", "Sandbox runs by termination", ["termination"], registry=r
        )
        self.uptime = Gauge("atomic_uptime_seconds", "Seconds since start", registry=r)
        self.uptime.set_function(lambda: time.time() - self.started)

        self._latency: dict[str, Reservoir] = defaultdict(Reservoir)
        self._requests: dict[str, int] = defaultdict(int)
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any, Reservoir, str]] = {}
        self._stages: dict[str, Reservoir] = defaultdict(Reservoir)
        self._queue_wait = Reservoir()
        self._job_duration = Reservoir()
        self._terminal: dict[str, int] = defaultdict(int)
        self._tokens: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        )
        self._sandbox: dict[str, int] = defaultdict(int)
        self._ws = 0
        self._accepted = 0
        # Live figures read at scrape time (queue depth, jobs by state ...), set by the app.
        self._live: Callable[[], dict[str, Any]] = lambda: {}
        r.register(_LiveCollector(self))

    def set_live(self, fn: Callable[[], dict[str, Any]]) -> None:
        self._live = fn

    # --- recording --------------------------------------------------------------------
    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        # Once per request: the labelled series are looked up once per (route, method,
        # status), not per call (the lookups were most of a /health answer's own cost).
        if method not in _METHODS:
            method = "OTHER"  # a client's made-up method must not mint new series
        series = self._request_series.get((route, method, status))
        if series is None:
            series = self._request_series[(route, method, status)] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_latency.labels(route),
                self._latency[route],
                f"{method} {route} {status}",
            )
        count, latency, reservoir, key = series
        count.inc()
        latency.observe(seconds)
        reservoir.add(seconds)
        self._requests[key] += 1

    def job_state(self, previous: str | None, state: str) -> None:
        if previous is None and state == "QUEUED":
            self._accepted += 1
            self.jobs_accepted.inc()
        if state in ("COMPLETE", "FAILED", "CANCELLED"):
            self._terminal[state] += 1
            self.jobs_total.labels(state).inc()

    def stage(self, name: str, seconds: float) -> None:
        self.stage_duration.labels(name).observe(seconds)
        self._stages[name].add(seconds)

    def queue_wait(self, seconds: float) -> None:
        self.queue_wait_hist.observe(seconds)
        self._queue_wait.add(seconds)

    def job_duration(self, seconds: float) -> None:
        self._job_duration.add(seconds)

    def tokens(self, provider: str | None, model: str | None, usage: dict[str, Any]) -> None:
        key = (provider or "unknown", model or "unknown")
        totals = self._tokens[key]
        for kind in ("prompt_tokens", "completion_tokens", "total_tokens"):
            n = int(usage.get(kind) or 0)
            totals[kind] += n
            if kind != "total_tokens":
                self.tokens_total.labels(key[0], key[1], kind.removesuffix("_tokens")).inc(n)

    def sandbox_run(self, termination: str) -> None:
        self._sandbox[termination] += 1
        self.sandbox_runs.labels(termination).inc()

    def ws_opened(self) -> None:
        self._ws += 1
        self.ws_connections.inc()

    def ws_closed(self) -> None:
        self._ws -= 1
        self.ws_connections.dec()

    # --- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        live = self._live()
        finished = sum(self._terminal.values())
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "requests": {
                "total": sum(self._requests.values()),
                "by_route": dict(self._requests),
                "latency_ms": {route: res.summary() for route, res in self._latency.items()},
            },
            "jobs": {
                "accepted": self._accepted,
                "by_state": {**live.get("jobs_by_state", {}), **{k: v for k, v in self._terminal.items()}},
                "finished": finished,
                "success_rate": round(self._terminal["COMPLETE"] / finished, 4) if finished else None,
                "duration_ms": self._job_duration.summary(),
            },
            "stages_ms": {name: res.summary() for name, res in self._stages.items()},
            "queue": {
                "wait_ms": self._queue_wait.summary(),
                "depth": live.get("queue_depth", 0),
                "by_priority": live.get("queue_by_priority", {}),
            },
            "websocket_connections": self._ws,
            "tokens": {f"{p}/{m}": dict(t) for (p, m), t in self._tokens.items()},
            "sandbox_runs": dict(self._sandbox),
            "agent": {"pool": live.get("agent_pool", {}), "usage_totals": live.get("agent_usage_totals", {})},
            "sandbox": live.get("sandbox", {}),
            "store": live.get("store", {}),
            "rate_limit": live.get("rate_limit"),
        }

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector:
    """Figures owned by other objects (queue, jobs), read when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        live = self.metrics._live()
        depth = GaugeMetricFamily("atomic_queue_depth", "Queued jobs by priority", labels=["priority"])
        for prio, n in (live.get("queue_by_priority") or {}).items():
            depth.add_metric([prio], n)
        yield depth
        active = GaugeMetricFamily("atomic_jobs_active", "Jobs not yet finished, by state", labels=["state"])
        for state, n in (live.get("jobs_by_state") or {}).items():
            active.add_metric([state], n)
        yield active
        busy = GaugeMetricFamily("atomic_workers_busy", "Pipelines running")
        busy.add_metric([], live.get("workers_busy", 0))
        yield busy
        pool = live.get("agent_pool") or {}
        for key in ("connected", "idle", "in_use", "waiting"):
            g = GaugeMetricFamily(f"atomic_agent_pool_{key}", f"Agent connections: {key}")
            g.add_metric([], pool.get(key, 0))
            yield g
        for key in ("requests", "failures", "reconnects"):
            c = CounterMetricFamily(f"atomic_agent_pool_{key}", f"Agent pool {key}")
            c.add_metric([], pool.get(key, 0))
            yield c
        limit = live.get("rate_limit")
        if limit is not None:
            for key, doc in (("allowed", "Requests the rate limit let through"),
                             ("limited", "Requests refused with 429 rate_limited")):
                c = CounterMetricFamily(f"atomic_rate_limit_{key}", doc)
                c.add_metric([], limit[key])
                yield c
            g = GaugeMetricFamily("atomic_rate_limit_clients", "Clients whose bucket is not full")
            g.add_metric([], limit["keys"])
            yield g
