"""One function per group of figures. Each starts the servers it needs and stops them.

Every load is bounded in count and time and goes to 127.0.0.1 only. Atomic and its
baseline are measured alternately, run by run, so a busy machine weighs on both alike.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import trio

from . import loadgen
from .http import Connection
from .report import Figure
from .server import HOST, AtomicServer, BaselineServer, rss_mb, split_cpus

BENCH_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

PROMPT = "Write a Python program that prints the first 10 square numbers"
GEN_BODY = json.dumps({"prompt": PROMPT, "execute": False}).encode()
STATES_NO_EXEC = ["PARSING", "GENERATING", "PACKAGING", "EXPORTING", "COMPLETE"]

# A queue that only grows: one worker, generating so slowly that it never finishes in the
# run, and room for every job the run submits.
HEALTH_MIN_RUNS = 5
STATUS_SETTLE_S = 3.0
STATUS_MIN_RUNS = 5
QUEUE_ONLY = {"max_concurrent": 1, "replay_tokens_per_s": 0.001, "max_queue_size": 10_000_000,
              "warm_pool_size": 0, "generate_timeout_s": 3600}


@dataclass
class Ctx:
    workdir: Path
    quick: bool
    runs: int
    duration: float  # seconds per closed-loop load run
    connections: int
    log: Callable[[str], None]

    def dir(self, name: str) -> Path:
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        return d


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


# --- HTTP throughput: /health, /api/status, POST /api/generate ------------------------------

def http_figures(ctx: Ctx, only: set[str]) -> list[Figure]:
    """/health and /api/status on one default server; its baseline beside it."""
    out: list[Figure] = []
    with AtomicServer(ctx.dir("http"), warm_pool_size=0) as srv, BaselineServer(ctx.dir("baseline")) as base:
        srv.start()
        base.start()
        if "health" in only:
            out += _health(ctx, srv, base)
        if "status" in only:
            out.append(_status(ctx, srv, base))
    return out


@contextlib.contextmanager
def _pinned(*servers: Any) -> Iterator[set[int] | None]:
    """Servers (with their children and threads) on the last CPU, the load generator on the
    others; yields the client's CPUs. Unpinned, the client's wake-ups preempted a server
    about once per request, which measured this machine's scheduler, not the server."""
    split = split_cpus()
    if split is None:
        yield None
        return
    for s in servers:
        s.pin(split[0])
    try:
        yield split[1]
    finally:
        for s in servers:
            s.pin(None)


def _alternate(ctx: Ctx, a_url: str, b_url: str, method: str = "GET", body: bytes = b"",
               min_runs: int = 1, cpus: set[int] | None = None) -> tuple[list, list]:
    kw = {"connections": ctx.connections, "method": method, "body": body, "cpus": cpus}
    # Warm-up, untimed: code paths, connection set-up, allocator.
    loadgen.closed(a_url, duration=2, **kw)
    loadgen.closed(b_url, duration=2, **kw)
    a, b = [], []
    for i in range(max(ctx.runs, min_runs)):
        a.append(loadgen.closed(a_url, duration=ctx.duration, **kw))
        b.append(loadgen.closed(b_url, duration=ctx.duration, **kw))
        ctx.log(f"  run {i + 1}: atomic {a[-1]['ok_rps']:,.0f}/s p99 {a[-1]['latency_ms']['p99']:.2f} ms;"
                f" baseline {b[-1]['ok_rps']:,.0f}/s p99 {b[-1]['latency_ms']['p99']:.2f} ms")
    return a, b


def _health(ctx: Ctx, srv: AtomicServer, base: BaselineServer) -> list[Figure]:
    ctx.log("GET /health: atomic vs bare ASGI app")
    # The two servers alternate; this machine's speed drifts by up to 2x over minutes, so
    # a ratio of medians needs more than 3 pairs to settle.
    with _pinned(srv, base) as client_cpus:
        a, b = _alternate(ctx, srv.url("/health"), base.url("/health"), min_runs=HEALTH_MIN_RUNS, cpus=client_cpus)
    tool = a[0]["tool"]
    details = {"tool": tool, "connections": ctx.connections, "duration_s": ctx.duration, "atomic": a, "baseline": b}
    return [
        Figure("health", "GET /health throughput", "req/s", [r["ok_rps"] for r in a], [r["ok_rps"] for r in b],
               ">= 0.85x baseline", ("ratio>=", 0.85), details=details),
        Figure("health", "GET /health p99", "ms", [r["latency_ms"]["p99"] for r in a],
               [r["latency_ms"]["p99"] for r in b], "-", None),
    ]


def _status(ctx: Ctx, srv: AtomicServer, base: BaselineServer) -> Figure:
    """The baseline column is the floor of this client on this machine: the bare app's
    /health under the same open-loop rate (it has no /api/status)."""
    ctx.log("GET /api/status: saturation, then open-loop at half of it (bare app's /health at the same rate)")
    url = srv.url("/api/status")
    runs, floor = [], []
    with _pinned(srv, base) as client_cpus:
        loadgen.closed(url, duration=2, connections=ctx.connections, cpus=client_cpus)
        sat = loadgen.closed(url, duration=ctx.duration, connections=ctx.connections, cpus=client_cpus)
        rate = max(10.0, sat["ok_rps"] / 2)
        # Steady state at half saturation, not the recovery from the overload just measured.
        time.sleep(STATUS_SETTLE_S)
        # A p99 over one 10 s run hangs on a few stalls of the machine: more runs, and their median.
        for i in range(max(ctx.runs, STATUS_MIN_RUNS)):
            r = loadgen.open_loop(url, rate=rate, duration=ctx.duration, connections=32, cpus=client_cpus)
            f = loadgen.open_loop(base.url("/health"), rate=rate, duration=ctx.duration, connections=32,
                                  cpus=client_cpus)
            runs.append(r)
            floor.append(f)
            late = r.get("send_late_ms", {}).get("p99")
            ctx.log(f"  run {i + 1} ({r['tool']}): {r['ok_rps']:,.0f}/s of {rate:,.0f}/s due;"
                    f" p50 {r['latency_ms']['p50']:.2f} ms, p99 {r['latency_ms']['p99']:.2f} ms;"
                    f" bare app p99 {f['latency_ms']['p99']:.2f} ms"
                    + (f"; client sent p99 {late:.2f} ms late" if late is not None else ""))
    return Figure("status", "GET /api/status p99 at half saturation (open loop)", "ms",
                  [r["latency_ms"]["p99"] for r in runs], [f["latency_ms"]["p99"] for f in floor], "< 5 ms",
                  ("<", 5.0), details={"saturation_rps": sat["ok_rps"], "saturation_tool": sat["tool"],
                                       "rate": rate, "runs": runs, "baseline_health_same_rate": floor,
                                       "pinned": client_cpus is not None})


def generate_figure(ctx: Ctx) -> Figure:
    ctx.log("POST /api/generate (queue only): atomic vs bare ASGI app parsing the same JSON")
    with AtomicServer(ctx.dir("generate"), **QUEUE_ONLY) as srv, BaselineServer(ctx.dir("baseline-gen")) as base:
        srv.start()
        base.start()
        a, b = _alternate(ctx, srv.url("/api/generate"), base.url("/api/generate"), "POST", GEN_BODY)
        depth = srv.status().get("queue", {}).get("depth")
        rss = srv.rss_mb()
    return Figure("generate", "POST /api/generate accepted (202)", "req/s", [r["ok_rps"] for r in a],
                  [r["ok_rps"] for r in b], ">= 0.6x baseline", ("ratio>=", 0.6),
                  details={"tool": a[0]["tool"], "atomic": a, "baseline": b, "queue_depth_after": depth,
                           "rss_mb_after": rss, "body": GEN_BODY.decode()})


# --- 100k queued jobs ---------------------------------------------------------------------

def queue_figures(ctx: Ctx) -> list[Figure]:
    target = 20_000 if ctx.quick else 100_000
    probe = 1000 if ctx.quick else 2000
    ctx.log(f"{target:,} queued jobs: submit p99 on an empty queue, fill, submit p99 again, RSS")
    url_path = "/api/generate"
    with AtomicServer(ctx.dir("queue"), **QUEUE_ONLY) as srv:
        srv.start()
        url = srv.url(url_path)
        loadgen.count(url, n=200, connections=8, method="POST", body=GEN_BODY)  # warm-up
        empty = [loadgen.count(url, n=probe, connections=8, method="POST", body=GEN_BODY) for _ in range(ctx.runs)]
        ctx.log("  empty: p99 " + ", ".join(f"{r['latency_ms']['p99']:.2f}" for r in empty) + " ms")
        depth = srv.status()["queue"]["depth"]
        t0 = time.monotonic()
        fill = loadgen.count(url, n=target - depth, connections=32, method="POST", body=GEN_BODY, max_duration=900)
        fill_s = time.monotonic() - t0
        depth = srv.status()["queue"]["depth"]
        ctx.log(f"  filled to {depth:,} in {fill_s:.0f} s ({fill['ok_rps']:,.0f}/s); RSS {srv.rss_mb():.0f} MB")
        full = []
        rss = [srv.rss_mb()]
        for _ in range(ctx.runs):
            full.append(loadgen.count(url, n=probe, connections=8, method="POST", body=GEN_BODY))
            rss.append(srv.rss_mb())
        ctx.log("  full: p99 " + ", ".join(f"{r['latency_ms']['p99']:.2f}" for r in full) + " ms")
        final_depth = srv.status()["queue"]["depth"]
    ok = depth >= target
    p99_empty = [r["latency_ms"]["p99"] for r in empty]
    p99_full = [r["latency_ms"]["p99"] for r in full]
    rel = [f / statistics.median(p99_empty) for f in p99_full]
    label_n = f"{target // 1000}k"
    return [
        Figure("queue100k", f"{label_n} queued jobs: server RSS", "MB", rss, None, "< 250 MB", ("<", 250.0), ok=ok,
               details={"depth_after_fill": depth, "depth_at_end": final_depth, "fill_s": fill_s,
                        "fill": fill}),
        Figure("queue100k", f"{label_n} queued jobs: submit p99 (vs empty queue)", "ms", p99_full, p99_empty,
               "<= 1.5x empty", ("ratio<=", 1.5), details={"empty": empty, "full": full, "relative": rel}),
    ]


# --- jobs: orchestration overhead and end to end ---------------------------------------------

def _overhead(doc: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(overhead, parts): the job's stage time outside the model and the sandbox call.

    ``execution.sandbox_ms`` is the whole sandbox call, Docker's API round trips
    included; ``duration_ms`` only the program's run. The model's time is the GENERATING
    stage's ``model_ms``: what the agent spent waiting on the provider's stream (the
    replay provider at rate 0: its per-word scheduling, about 1 ms for 30 words).
    """
    stages = {s["name"]: s["duration_ms"] for s in doc["stages"]}
    model = sum(s.get("model_ms") or 0.0 for s in doc["stages"])
    wall = sum(stages.values())
    ex = doc.get("execution") or {}
    program = ex.get("duration_ms") or 0.0
    sandbox = ex.get("sandbox_ms") or program
    return wall - sandbox - model, {**stages, "model": model, "sandbox_call": sandbox, "program": program,
                                    "docker_api": sandbox - program,
                                    "overhead_incl_model": wall - sandbox,
                                    "overhead_incl_model_and_docker_api": wall - program}


async def _submit_wait(port: int, body: dict[str, Any]) -> dict[str, Any]:
    conn = Connection(HOST, port)
    try:
        status, doc = await conn.request("POST", "/api/generate", body)
    finally:
        await conn.aclose()
    if status != 200:
        raise RuntimeError(f"job answered {status}: {str(doc)[:300]}")
    return doc


def job_figures(ctx: Ctx, only: set[str]) -> list[Figure]:
    out: list[Figure] = []
    with AtomicServer(ctx.dir("jobs"), replay_tokens_per_s=0, warm_pool_size=4, max_concurrent=4,
                      threads=4) as srv:
        srv.start(sandbox=True, warm=4, timeout=180)
        body = {"prompt": PROMPT, "execute": True, "wait": True}
        # Warm-up: the first jobs pay for imports and first connections.
        for _ in range(2):
            trio.run(_submit_wait, srv.port, body)
        if "overhead" in only:
            out.append(_overhead_figure(ctx, srv, body))
        if "e2e" in only:
            out.append(_e2e_figure(ctx, srv, body))
    return out


def _overhead_figure(ctx: Ctx, srv: AtomicServer, body: dict[str, Any]) -> Figure:
    n = 8 if ctx.quick else 20
    ctx.log(f"orchestration overhead: {n} jobs one at a time, x{ctx.runs}")
    runs, parts_all, docs = [], [], []
    for i in range(ctx.runs):
        vals: list[float] = []
        with_model: list[float] = []
        for _ in range(n):
            srv.wait_status(sandbox=True, warm=4, timeout=60)  # a warm container for every job
            doc = trio.run(_submit_wait, srv.port, body)
            if doc["state"] != "COMPLETE":
                raise RuntimeError(f"job ended {doc['state']}: {doc.get('error')}")
            ov, parts = _overhead(doc)
            vals.append(ov)
            with_model.append(parts["overhead_incl_model"])
            parts_all.append(parts)
            docs.append(doc["id"])
        runs.append(statistics.median(vals))
        ctx.log(f"  run {i + 1}: p50 {runs[-1]:.2f} ms (min {min(vals):.2f}, max {max(vals):.2f});"
                f" with the model's time {statistics.median(with_model):.2f} ms")
    breakdown = {k: statistics.median(p.get(k, 0.0) for p in parts_all) for k in parts_all[0]}
    return Figure("overhead", "orchestration overhead per job, p50", "ms", runs, None, "< 5 ms", ("<", 5.0),
                  details={"jobs_per_run": n, "median_ms_by_stage": breakdown,
                           "definition": "sum of stage duration_ms - execution.sandbox_ms (the whole sandbox "
                                         "call) - GENERATING's model_ms (the agent's wait on the replay "
                                         "provider at rate 0); overhead_incl_model counts the model too, "
                                         "overhead_incl_model_and_docker_api also the Docker API round trips"})


def _e2e_figure(ctx: Ctx, srv: AtomicServer, body: dict[str, Any]) -> Figure:
    n = 12 if ctx.quick else 40
    ctx.log(f"end to end: {n} jobs (execute, warm pool, 4 workers) vs Docker SDK cycles on 4 threads, x{ctx.runs}")
    dock = DockerBaseline(ctx.dir("docker"))
    dock.warm()

    async def batch() -> float:
        t0 = time.perf_counter()
        docs: list[dict[str, Any]] = []

        async def one() -> None:
            docs.append(await _submit_wait(srv.port, body))

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(one)
        elapsed = time.perf_counter() - t0
        bad = [d["state"] for d in docs if d["state"] != "COMPLETE"]
        if bad:
            raise RuntimeError(f"{len(bad)} job(s) did not complete: {bad[:5]}")
        return elapsed

    a, b = [], []
    try:
        for i in range(ctx.runs):
            srv.wait_status(sandbox=True, warm=4, timeout=120)
            a.append(n / trio.run(batch) * 60)
            b.append(n / dock.cycles(n, threads=4) * 60)
            ctx.log(f"  run {i + 1}: atomic {a[-1]:.0f} jobs/min; docker SDK {b[-1]:.0f} cycles/min")
    finally:
        dock.close()
    return Figure("e2e", "end-to-end jobs (execute, warm pool)", "jobs/min", a, b, ">= 0.8x baseline",
                  ("ratio>=", 0.8), details={"jobs_per_run": n, "parallelism": 4})


class DockerBaseline:
    """The Docker SDK alone: create, start, wait, logs, remove ``python3 -c 'print(1)'``
    with Atomic's confinement (host_config_kwargs), on N threads."""

    CMD = ("python3", "-c", "print(1)")

    def __init__(self, workdir: Path) -> None:
        import docker

        from atomic import config
        from atomic.sandbox.limits import USER, WORKSPACE, default_limits, host_config_kwargs

        self.settings = config.load(env={}, overrides={"data_dir": str(workdir)})
        self.client = docker.from_env()
        self.api = self.client.api
        self.run_dir = workdir / "run"
        (self.run_dir / "files").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "stdin").write_bytes(b"")
        kw = host_config_kwargs(self.settings, default_limits(self.settings), str(self.run_dir))
        # The one difference: a log driver, so the SDK can read the output back.
        kw["log_config"] = {"Type": "json-file", "Config": {}}
        self.host_config = self.api.create_host_config(**kw)
        self.user, self.workdir = USER, WORKSPACE

    def one(self) -> None:
        cid = self.api.create_container(self.settings.sandbox_image, command=list(self.CMD), user=self.user,
                                        working_dir=self.workdir, network_disabled=True,
                                        host_config=self.host_config, labels={"io.atomic.bench": "1"})["Id"]
        try:
            self.api.start(cid)
            code = self.api.wait(cid, timeout=60)["StatusCode"]
            out = self.api.logs(cid, stdout=True, stderr=False)
            if code != 0 or out.strip() != b"1":
                raise RuntimeError(f"baseline container: exit {code}, output {out[:200]!r}")
        finally:
            self.api.remove_container(cid, force=True, v=True)

    def warm(self) -> None:
        self.one()

    def cycles(self, n: int, threads: int) -> float:
        """Seconds for ``n`` cycles shared by ``threads`` threads."""
        lock = threading.Lock()
        left = [n]
        errors: list[Exception] = []

        def worker() -> None:
            while True:
                with lock:
                    if left[0] == 0 or errors:
                        return
                    left[0] -= 1
                try:
                    self.one()
                except Exception as exc:  # noqa: BLE001 - reported after the join
                    errors.append(exc)
                    return

        t0 = time.perf_counter()
        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(600)
        if errors:
            raise errors[0]
        return time.perf_counter() - t0

    def close(self) -> None:
        try:
            for c in self.client.containers.list(all=True, filters={"label": "io.atomic.bench=1"}):
                c.remove(force=True)
        finally:
            self.client.close()


# --- WebSockets -----------------------------------------------------------------------------

def ws_figure(ctx: Ctx) -> Figure:
    n = 1000
    runs = ctx.runs
    ctx.log(f"{n} concurrent WebSocket streams (3 start a job for each 1 that follows one), x{runs}")
    rss_runs, results = [], []
    ok_all = True
    with AtomicServer(ctx.dir("ws"), replay_tokens_per_s=0, max_concurrent=50, max_queue_size=20_000,
                      warm_pool_size=0) as srv:
        srv.start()
        for i in range(runs):
            res = trio.run(_ws_run, srv.port, srv.pid, n)
            results.append(res)
            rss_runs.append(res["peak_rss_mb"])
            ok_all = ok_all and res["ok"]
            ctx.log(f"  run {i + 1}: {res['complete']}/{n} clients got every state and done; peak open "
                    f"{res['peak_open']}; peak RSS {res['peak_rss_mb']:.0f} MB; {res['elapsed_s']:.1f} s"
                    + (f"; problems: {res['problems'][:3]}" if res["problems"] else ""))
    return Figure("ws", f"{n} concurrent WebSocket streams: peak server RSS", "MB", rss_runs, None,
                  "all events; < 300 MB", ("<", 300.0), ok=ok_all, details={"runs": results})


async def _ws_run(port: int, pid: int, n: int) -> dict[str, Any]:
    from trio_websocket import ConnectionClosed, connect_websocket_url

    starters = n * 3 // 4
    all_open = trio.Event()
    opened = 0
    open_now = 0
    peak_open = 0
    job_ids: list[trio.Event] = [trio.Event() for _ in range(n - starters)]
    job_id_of: dict[int, str] = {}
    problems: list[str] = []
    complete = 0
    peak_rss = rss_mb(pid)
    connect_limit = trio.CapacityLimiter(64)

    async def client(i: int) -> None:
        async with trio.open_nursery() as nursery:  # the connection's reader task lives here
            async with connect_limit:
                with trio.fail_after(30):
                    ws = await connect_websocket_url(nursery, f"ws://{HOST}:{port}/ws/stream")
            try:
                await converse(i, ws)
            finally:
                with trio.move_on_after(5, shield=True):
                    await ws.aclose()

    async def converse(i: int, ws: Any) -> None:
        nonlocal opened, open_now, peak_open, complete
        is_starter = i < starters
        opened += 1
        open_now += 1
        peak_open = max(peak_open, open_now)
        try:
            if opened == n:
                all_open.set()
            await all_open.wait()
            if is_starter:
                await ws.send_message(json.dumps({"prompt": PROMPT, "execute": False}))
            else:
                k = i - starters
                await job_ids[k].wait()
                await ws.send_message(json.dumps({"job_id": job_id_of[k]}))
            events = []
            close = None
            try:
                while True:
                    ev = json.loads(await ws.get_message())
                    events.append(ev)
                    if is_starter and ev["type"] == "accepted" and i < n - starters:
                        job_id_of[i] = ev["job_id"]
                        job_ids[i].set()
                    if ev["type"] in ("done", "error"):
                        break
                # The server closes with 1000 after done.
                with trio.move_on_after(5):
                    extra = await ws.get_message()
                    events.append(json.loads(extra))
            except ConnectionClosed as exc:
                close = exc.reason.code if exc.reason else None
            if ws.closed is not None:
                close = ws.closed.code
            problem = _check(events, is_starter, close)
            if problem:
                problems.append(f"client {i}: {problem}")
            else:
                complete += 1
        finally:
            open_now -= 1

    async def sampler() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, rss_mb(pid))
            await trio.sleep(0.1)

    t0 = time.perf_counter()
    with trio.move_on_after(300) as scope:
        async with trio.open_nursery() as outer:
            outer.start_soon(sampler)
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(client, i)
            outer.cancel_scope.cancel()
    elapsed = time.perf_counter() - t0
    if scope.cancelled_caught:
        problems.append("timed out after 300 s")
    await trio.sleep(0.5)
    peak_rss = max(peak_rss, rss_mb(pid))
    return {"ok": complete == n and not problems, "complete": complete, "peak_open": peak_open,
            "peak_rss_mb": peak_rss, "rss_after_mb": rss_mb(pid), "elapsed_s": elapsed, "problems": problems[:20]}


def _check(events: list[dict[str, Any]], starter: bool, close: int | None) -> str | None:
    if not events:
        return "no events"
    seqs = [e.get("seq") for e in events]
    if seqs != list(range(1, len(events) + 1)):
        return f"seq not 1..n: {seqs[:10]}"
    if events[-1]["type"] != "done":
        return f"last event {events[-1]['type']}: {str(events[-1])[:200]}"
    if close not in (1000, None):
        return f"closed with {close}"
    states = [e["state"] for e in events if e["type"] == "state"]
    if starter:
        if events[0]["type"] != "accepted":
            return f"first event {events[0]['type']}"
        if states != STATES_NO_EXEC:
            return f"states {states}"
    else:
        # A follower first gets the state the job is in (QUEUED included), then the
        # states from there: a tail of the whole sequence.
        # (A job already finished when followed yields its done at once.)
        whole = ["QUEUED", *STATES_NO_EXEC]
        if events[0]["type"] not in ("state", "done"):
            return f"first event {events[0]['type']}"
        if states and states != whole[-len(states):]:
            return f"states {states}"
        if events[-1]["job"]["state"] != "COMPLETE":
            return f"job ended {events[-1]['job']['state']}"
    return None


# --- idle RSS ---------------------------------------------------------------------------------

def idle_figure(ctx: Ctx) -> Figure:
    ctx.log(f"idle RSS after start-up (default settings, replay provider), {ctx.runs} start(s)")
    vals, startup = [], []
    for i in range(ctx.runs):
        with AtomicServer(ctx.dir(f"idle{i}")) as srv:
            srv.start(sandbox=True, warm=2, timeout=180)
            time.sleep(2.0)
            vals.append(srv.rss_mb())
            startup.append(srv.startup_s)
        ctx.log(f"  start {i + 1}: {vals[-1]:.0f} MB (ready in {startup[-1]:.1f} s)")
    return Figure("idle_rss", "idle RSS of atomic serve (agent excluded)", "MB", vals, None, "< 120 MB",
                  ("<", 120.0), details={"startup_s": startup})


# --- Cython twins -------------------------------------------------------------------------------

def cython_queue_figure(ctx: Ctx) -> Figure:
    import bench_queue

    from atomic import _fast

    twins = _fast.twins("queue_core")
    if len(twins) < 2:
        raise RuntimeError("the Cython twin is not built: .venv/bin/python setup.py build_ext --inplace")
    n = 20_000 if ctx.quick else 100_000
    items = bench_queue._items(n, 1)
    ctx.log(f"Cython queue twin vs Python twin (n={n:,}), x{ctx.runs}")
    ratios, per = [], []
    for _ in range(ctx.runs):
        row = {}
        for name, fn in bench_queue.WORKLOADS:
            best = [0.0, 0.0]
            for _ in range(3):
                for i, mod in enumerate(twins):
                    ops, secs = fn(mod, items)
                    best[i] = max(best[i], ops / secs)
            row[name] = best[1] / best[0]
        per.append(row)
        ratios.append(math.exp(statistics.fmean(math.log(r) for r in row.values())))
    ctx.log("  " + ", ".join(f"{k} {statistics.median(p[k] for p in per):.2f}x" for k in per[0]))
    return Figure("cy_queue", "Cython queue twin speed-up (geomean of bench_queue workloads)", "x", ratios, None,
                  ">= 2x", (">=", 2.0), details={"per_workload": per})


def cython_codec_figure(ctx: Ctx) -> Figure:
    import random

    import bench_codec as bc

    from atomic import _fast

    twins = _fast.twins("codec")
    if len(twins) < 2:
        raise RuntimeError("the Cython twin is not built: .venv/bin/python setup.py build_ext --inplace")
    pure, fast = twins
    rng = random.Random(1)
    n = 20_000 if ctx.quick else 100_000
    payloads = [pure.dumps(m) for m in bc.make_messages(n, rng)]
    blob = b"".join(pure.encode_frame(p, bc.MAX_FRAME) for p in payloads)
    coalesced = bc.chunked(blob, [65536])
    fragmented = bc.chunked(blob, [rng.randint(1, 64) for _ in range(997)])
    mixed = bc.chunked(blob, [rng.choice([7, 40, 300, 4096, 65536]) for _ in range(997)])

    def mix(c: Any) -> int:
        return (bc.decode_all(c, coalesced) + bc.decode_all(c, fragmented) + bc.decode_all(c, mixed)
                + bc.encode_all(c, payloads))

    ctx.log(f"Cython codec twin vs Python twin (bench_codec's realistic mix, {n:,} frames), x{ctx.runs}")
    ratios = []
    for _ in range(ctx.runs):
        py = bc.best_rate(lambda: mix(pure), 3)
        cy = bc.best_rate(lambda: mix(fast), 3)
        ratios.append(cy / py)
    return Figure("cy_codec", "Cython codec twin speed-up (bench_codec realistic mix)", "x", ratios, None, ">= 3x",
                  (">=", 3.0))
