#!/usr/bin/env python
"""A Trio HTTP load client: the harness's fallback when ``wrk`` is missing, and its
open-loop client (which wrk is not).

    load.py closed URL [-c 64] [-d 10] [--count N] [--method POST --body-file F] [--json PATH]
    load.py open   URL --rate 500 [-d 10] [-c 64] [--json PATH]

closed  ``-c`` connections each send a request as soon as the previous answer arrived,
        for ``-d`` seconds or until ``--count`` requests were sent, whichever comes first.
open    requests are due at a fixed rate, whatever the answers do; each is sent on the
        first free connection, and its latency counts from when it was *due*, so a server
        that stalls is charged for the requests it held up (no coordinated omission).

Prints (and with ``--json`` writes) one JSON object: requests, duration_s, rps, status
counts, latency percentiles in ms, errors. Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.http import Connection, HTTPError, build_request

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.status: dict[int, int] = {}
        self.errors = 0
        self.sent = 0

    def summary(self, elapsed: float) -> dict:
        lat = sorted(self.latencies)
        done = len(lat)
        return {
            "requests": done,
            "sent": self.sent,
            "duration_s": round(elapsed, 3),
            "rps": done / elapsed if elapsed > 0 else 0.0,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "errors": self.errors,
            "latency_ms": {
                f"p{p}": round(percentile(lat, p) * 1000, 3) for p in (50, 90, 99, 99.9)
            } | {"max": round(lat[-1] * 1000, 3) if lat else math.nan},
        }


async def _one(conn: Connection, raw: bytes, stats: Stats, t_due: float) -> None:
    try:
        status, _, _ = await conn.send(raw, want_body=False)
    except (HTTPError, OSError):
        stats.errors += 1
        await conn.aclose()
        return
    stats.latencies.append(time.perf_counter() - t_due)
    stats.status[status] = stats.status.get(status, 0) + 1


async def closed_loop(host: str, port: int, raw: bytes, conns: int, duration: float,
                      count: int | None) -> dict:
    stats = Stats()
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while time.perf_counter() < deadline and (count is None or stats.sent < count):
                stats.sent += 1
                await _one(conn, raw, stats, time.perf_counter())
        finally:
            await conn.aclose()

    with trio.move_on_after(duration + 30):  # a hung server cannot hold the client
        async with trio.open_nursery() as nursery:
            for _ in range(conns):
                nursery.start_soon(worker)
    return stats.summary(time.perf_counter() - t0)


async def open_loop(host: str, port: int, raw: bytes, conns: int, duration: float, rate: float) -> dict:
    stats = Stats()
    total = int(rate * duration)
    send, receive = trio.open_memory_channel[float](math.inf)
    t0 = time.perf_counter() + 0.2  # connections open first

    async def scheduler() -> None:
        async with send:
            for i in range(total):
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await trio.sleep(delay)
                stats.sent += 1
                send.send_nowait(due)

    async def worker() -> None:
        conn = Connection(host, port)
        await conn.connect()
        try:
            async for due in receive:
                await _one(conn, raw, stats, due)
        finally:
            await conn.aclose()

    with trio.move_on_after(duration + 30):
        async with trio.open_nursery() as nursery:
            for _ in range(conns):
                nursery.start_soon(worker)
            nursery.start_soon(scheduler)
    out = stats.summary(time.perf_counter() - t0)
    out["target_rps"] = rate
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["closed", "open"])
    ap.add_argument("url")
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--count", type=int, help="closed: stop after this many requests")
    ap.add_argument("--rate", type=float, help="open: requests per second")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--body-file", help="request body (sent as application/json)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)

    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    if host not in LOOPBACK:
        ap.error("load is sent to the loopback interface only")
    body = Path(args.body_file).read_bytes() if args.body_file else b""
    raw = build_request(args.method, host, port, url.path + (f"?{url.query}" if url.query else ""), body)
    if args.mode == "closed":
        result = trio.run(closed_loop, host, port, raw, args.connections, args.duration, args.count)
    else:
        if not args.rate or args.rate <= 0:
            ap.error("open needs --rate above 0")
        result = trio.run(open_loop, host, port, raw, args.connections, args.duration, args.rate)
    text = json.dumps(result)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
