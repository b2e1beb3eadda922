"""Figures for the production edges: TLS and HTTP/2, the rate limiter's cost, tracing's cost.

Each compares Atomic with itself, the edge on against the edge off, side by side in the
same run (servers alternate run by run), so a busy machine weighs on both alike.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trio

from . import loadgen
from .figures import GEN_BODY, HEALTH_MIN_RUNS, PROMPT, QUEUE_ONLY, Ctx, _pinned
from .http import Connection
from .report import Figure
from .server import HOST, AtomicServer


def _certs(directory: Path) -> tuple[str, str, str]:
    """(ca, cert, key) PEM files for 127.0.0.1, made with trustme."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(HOST, "localhost")
    paths = (str(directory / "ca.pem"), str(directory / "cert.pem"), str(directory / "key.pem"))
    ca.cert_pem.write_to_path(paths[0])
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(paths[1], append=True)
    leaf.private_key_pem.write_to_path(paths[2])
    return paths


def _check(url: str, body: bytes, ca: str | None, expect: int) -> None:
    """One request with Python's own client: the route answers ``expect`` (h2load cannot
    read Hypercorn's HTTP/1.1 status lines, see loadgen.parse_h2load)."""
    import ssl
    import urllib.request

    req = urllib.request.Request(url, data=body or None, headers={"content-type": "application/json"})
    context = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:
        if resp.status != expect:
            raise RuntimeError(f"{url} answered {resp.status}, not {expect}")


def _closed(url: str, ctx: Ctx, *, h1: bool = True, body: bytes = b"", cpus: set[int] | None = None,
            duration: float | None = None) -> dict[str, Any]:
    """Closed-loop load with h2load when installed (the only one of our tools that speaks
    TLS and HTTP/2), else wrk or load.py for plain HTTP."""
    d = duration or ctx.duration
    if loadgen.h2load_path() is not None:
        return loadgen.h2load(url, connections=ctx.connections, duration=d, h1=h1, body=body, cpus=cpus)
    if url.startswith("https:") or not h1:
        raise RuntimeError("h2load is not installed (apt-get install -y nghttp2-client; tools/setup.sh does)")
    return loadgen.closed(url, connections=ctx.connections, duration=d, method="POST" if body else "GET",
                          body=body, cpus=cpus)


# --- TLS and HTTP/2 -------------------------------------------------------------------------------

def tls_figures(ctx: Ctx) -> list[Figure]:
    """GET /health and POST /api/generate (queue only) over plain HTTP/1.1, HTTPS/1.1 and
    HTTP/2 (TLS, ALPN), h2load for all three (64 connections, one request in flight each)."""
    ctx.log("TLS and HTTP/2: /health and generate over HTTP/1.1, HTTPS/1.1 and h2 (h2load)")
    ca, cert, key = _certs(ctx.dir("certs"))
    out: list[Figure] = []
    with AtomicServer(ctx.dir("plain"), **QUEUE_ONLY) as plain, \
            AtomicServer(ctx.dir("tls"), ca=ca, tls_cert=cert, tls_key=key, **QUEUE_ONLY) as secure:
        plain.start()
        secure.start()
        for path, body, label, pin in (("/health", b"", "GET /health", True),
                                       ("/api/generate", GEN_BODY, "POST /api/generate accepted", False)):
            runs: dict[str, list[dict[str, Any]]] = {"http/1.1": [], "https/1.1": [], "h2": []}
            with _pinned(plain, secure) if pin else contextlib.nullcontext() as cpus:
                kinds = (("http/1.1", plain.url(path), True), ("https/1.1", secure.url(path), True),
                         ("h2", secure.url(path), False))
                for _, url, h1 in kinds:  # a checked answer, then a warm-up, untimed
                    _check(url, body, ca, 202 if body else 200)
                    _closed(url, ctx, h1=h1, body=body, cpus=cpus, duration=2)
                for i in range(max(ctx.runs, HEALTH_MIN_RUNS if pin else ctx.runs)):
                    for name, url, h1 in kinds:
                        runs[name].append(_closed(url, ctx, h1=h1, body=body, cpus=cpus))
                    ctx.log(f"  {label} run {i + 1}: " + "; ".join(
                        f"{k} {v[-1]['ok_rps']:,.0f}/s ({v[-1].get('protocol') or v[-1]['tool']})"
                        for k, v in runs.items()))
            base = [r["ok_rps"] for r in runs["http/1.1"]]
            for name, shown in (("https/1.1", "HTTPS/1.1"), ("h2", "HTTP/2 (TLS)")):
                out.append(Figure("tls", f"{label} over {shown} (baseline: plain HTTP/1.1)", "req/s",
                                  [r["ok_rps"] for r in runs[name]], base, "-", None,
                                  details={"runs": runs, "connections": ctx.connections,
                                           "streams_per_connection": 1}))
    return out


# --- the rate limiter ---------------------------------------------------------------------------

def ratelimit_figures(ctx: Ctx) -> list[Figure]:
    """The limiter's cost per request on the fast paths: the same server with a limit no
    client reaches (every request still takes a token) against none; and the decision
    alone, in process."""
    ctx.log("rate limiter: GET /api/status and POST /api/generate with a limit never reached vs none")
    out: list[Figure] = []
    never = {"rate_limit": "100000000/s"}
    with AtomicServer(ctx.dir("nolimit"), **QUEUE_ONLY) as off, \
            AtomicServer(ctx.dir("limit"), **QUEUE_ONLY, **never) as on:
        off.start()
        on.start()
        for path, body, label, pin in (("/api/status", b"", "GET /api/status", True),
                                       ("/api/generate", GEN_BODY, "POST /api/generate accepted", False)):
            a: list[dict[str, Any]] = []
            b: list[dict[str, Any]] = []
            with _pinned(off, on) if pin else contextlib.nullcontext() as cpus:
                _check(on.url(path), body, None, 202 if body else 200)
                _check(off.url(path), body, None, 202 if body else 200)
                _closed(on.url(path), ctx, body=body, cpus=cpus, duration=2)
                _closed(off.url(path), ctx, body=body, cpus=cpus, duration=2)
                for i in range(max(ctx.runs, HEALTH_MIN_RUNS if pin else ctx.runs)):
                    a.append(_closed(on.url(path), ctx, body=body, cpus=cpus))
                    b.append(_closed(off.url(path), ctx, body=body, cpus=cpus))
                    ctx.log(f"  {label} run {i + 1}: limited {a[-1]['ok_rps']:,.0f}/s, "
                            f"unlimited {b[-1]['ok_rps']:,.0f}/s")
            per_req_us = [1e6 / x["ok_rps"] - 1e6 / y["ok_rps"] for x, y in zip(a, b, strict=True)]
            out.append(Figure("ratelimit", f"{label} with a rate limit (baseline: none)", "req/s",
                              [r["ok_rps"] for r in a], [r["ok_rps"] for r in b], "-", None,
                              details={"on": a, "off": b, "cost_per_request_us": per_req_us,
                                       "cost_per_request_us_median": statistics.median(per_req_us)}))
    out.append(_limiter_decision(ctx))
    return out


def _limiter_decision(ctx: Ctx) -> Figure:
    from atomic.ratelimit import LocalLimiter

    n = 200_000 if ctx.quick else 1_000_000
    keys = [f"addr:10.0.{i // 256}.{i % 256}" for i in range(10_000)]
    limiter = LocalLimiter(1e9, 1e9)
    runs = []
    for _ in range(ctx.runs):
        t0 = time.perf_counter()
        for i in range(n):
            limiter.acquire_nowait(keys[i % 10_000])
        runs.append((time.perf_counter() - t0) / n * 1e9)
    ctx.log(f"  the decision alone: {statistics.median(runs):.0f} ns (10,000 clients)")
    return Figure("ratelimit", "rate limiter decision alone (acquire_nowait, 10k clients)", "ns", runs, None, "-",
                  None, details={"calls_per_run": n})


# --- tracing ------------------------------------------------------------------------------------

class _Sink:
    """An OTLP/HTTP endpoint that takes every export and answers 200 (bytes counted)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                sink.requests += 1
                sink.bytes += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def _sink() -> Iterator[_Sink]:
    s = _Sink()
    try:
        yield s
    finally:
        s.close()


async def _jobs(port: int, n: int) -> float:
    """Seconds for ``n`` jobs (no execution) submitted at once, each waited for."""
    body = {"prompt": PROMPT, "execute": False, "wait": True}

    async def one() -> None:
        conn = Connection(HOST, port)
        try:
            status, doc = await conn.request("POST", "/api/generate", body)
        finally:
            await conn.aclose()
        if status != 200 or doc["state"] != "COMPLETE":
            raise RuntimeError(f"job answered {status}: {str(doc)[:300]}")

    t0 = time.perf_counter()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)
    return time.perf_counter() - t0


def tracing_figures(ctx: Ctx) -> list[Figure]:
    """Jobs through the whole pipeline (replay at rate 0, no execution: every span but the
    sandbox's) and job acceptance, tracing on (OTLP/HTTP to a local sink) against off."""
    ctx.log("tracing: jobs/min and generate accepts, OTLP export to a local sink vs tracing off")
    n = 60 if ctx.quick else 200
    out: list[Figure] = []
    jobs = {"replay_tokens_per_s": 0, "max_concurrent": 4, "warm_pool_size": 0}
    with _sink() as sink:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        with AtomicServer(ctx.dir("trace-off"), **jobs) as off, \
                AtomicServer(ctx.dir("trace-on"), env=otel, **jobs) as on:
            off.start(sandbox=True)
            on.start(sandbox=True)
            trio.run(_jobs, on.port, 10)
            trio.run(_jobs, off.port, 10)
            a, b = [], []
            for i in range(ctx.runs):
                a.append(n / trio.run(_jobs, on.port, n) * 60)
                b.append(n / trio.run(_jobs, off.port, n) * 60)
                ctx.log(f"  run {i + 1}: tracing on {a[-1]:,.0f} jobs/min, off {b[-1]:,.0f} jobs/min")
        out.append(Figure("tracing", "jobs (no execution) with tracing on (baseline: off)", "jobs/min", a, b,
                          "-", None, details={"jobs_per_run": n, "export_requests": sink.requests,
                                              "export_bytes": sink.bytes}))
        with AtomicServer(ctx.dir("accept-off"), **QUEUE_ONLY) as off, \
                AtomicServer(ctx.dir("accept-on"), env=otel, **QUEUE_ONLY) as on:
            off.start()
            on.start()
            _check(on.url("/api/generate"), GEN_BODY, None, 202)
            _closed(on.url("/api/generate"), ctx, body=GEN_BODY, duration=2)
            _closed(off.url("/api/generate"), ctx, body=GEN_BODY, duration=2)
            x, y = [], []
            for i in range(ctx.runs):
                x.append(_closed(on.url("/api/generate"), ctx, body=GEN_BODY))
                y.append(_closed(off.url("/api/generate"), ctx, body=GEN_BODY))
                ctx.log(f"  accepts run {i + 1}: tracing on {x[-1]['ok_rps']:,.0f}/s, off {y[-1]['ok_rps']:,.0f}/s")
        out.append(Figure("tracing", "POST /api/generate accepted with tracing on (baseline: off)", "req/s",
                          [r["ok_rps"] for r in x], [r["ok_rps"] for r in y], "-", None,
                          details={"on": x, "off": y}))
    return out
