#!/usr/bin/env python
"""IPC round trips and throughput through the real pool and agent server.

Measured in one run, in one process, on Unix sockets:
- round trip p50/p99: a bare Trio echo (4-byte header + small JSON, echoed), a framed JSON
  echo (the same, but both ends decode the frame and encode a reply with the codec: the
  floor for any framed JSON protocol on Trio), the pool's ping/pong, and a tiny replay
  ``generate`` (one token + done). The kinds are sampled in interleaved blocks so that
  load from other processes falls on all of them alike;
- tokens/s of a token stream with 1 and 4 connections: the replay provider at full speed
  through the agent and pool (which joins deltas that come less than 1 ms apart into one
  frame), beside a bare Trio server writing one frame per token.
Prints a table with ratios to the bare baseline (target: ping within 1.3x of bare echo).

Then what TLS costs per round trip on the agent's TCP transport (``ATOMIC_IPC_TLS_*``, with
``ATOMIC_IPC_TOKEN``): two agents on 127.0.0.1, one plain TCP and one TLS, each with its
pool; ping/pong and a one-token generate sampled in interleaved blocks; the TLS p50 minus
the plain p50 is the cost. Certificates are made here (trustme).

    python benchmarks/bench_ipc.py [--quick] [--json PATH] [--only tls]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from atomic import _fast, config
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import serve_agent
from atomic.ipc.pool import AgentPool

codec = _fast.load("codec")
MAX_FRAME = 8 << 20


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def sample(fn: Callable[[], Awaitable[Any]], n: int, warmup: int = 200) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        await fn()
        out.append((clock() - start) * 1e6)
    return out


# --- the bare baseline -------------------------------------------------------------------


async def bare_echo_server(path: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(path)
    sock.listen(64)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                if data[:1] == b"S":  # stream request: b"S" + count (4 bytes) + frame
                    count = int.from_bytes(data[1:5], "big")
                    frame = data[5:]
                    for _ in range(count):
                        await stream.send_all(frame)
                else:
                    await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async with trio.open_nursery() as nursery:
        task_status.started()
        await trio.serve_listeners(handle, [trio.SocketListener(sock)], handler_nursery=nursery)


async def json_echo_server(path: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Decodes each frame and answers ``{"type": "pong", "id": ...}``: framing + JSON, no logic."""
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(path)
    sock.listen(64)

    async def handle(stream: trio.SocketStream) -> None:
        decoder = codec.FrameDecoder(MAX_FRAME)
        try:
            while data := await stream.receive_some(65536):
                decoder.receive_data(data)
                while (f := decoder.next_frame()) is not codec.NEED_DATA:
                    msg = codec.loads(f)
                    await stream.send_all(codec.encode_message({"type": "pong", "id": msg["id"]}, MAX_FRAME))
        except trio.BrokenResourceError:
            pass

    async with trio.open_nursery() as nursery:
        task_status.started()
        await trio.serve_listeners(handle, [trio.SocketListener(sock)], handler_nursery=nursery)


async def json_round_trip(stream: trio.SocketStream, decoder: Any, rid: list[int]) -> None:
    rid[0] += 1
    await stream.send_all(codec.encode_message({"type": "ping", "id": rid[0]}, MAX_FRAME))
    while True:
        f = decoder.next_frame()
        if f is not codec.NEED_DATA:
            assert codec.loads(f)["id"] == rid[0]
            return
        decoder.receive_data(await stream.receive_some(65536))


async def interleaved(kinds: dict[str, Callable[[], Awaitable[Any]]], n: int, blocks: int = 20) -> dict[str, list[float]]:
    """``n`` samples of each kind, taken in ``blocks`` rounds that alternate the kinds."""
    out: dict[str, list[float]] = {name: [] for name in kinds}
    for fn in kinds.values():
        await sample(fn, 0)
    for _ in range(blocks):
        for name, fn in kinds.items():
            out[name] += await sample(fn, n // blocks, warmup=20)
    return out


async def bare_round_trip(stream: trio.SocketStream, frame: bytes) -> None:
    await stream.send_all(frame)
    got = 0
    while got < len(frame):
        got += len(await stream.receive_some(65536))


async def bare_stream(path: str, frame: bytes, count: int) -> int:
    stream = await trio.open_unix_socket(path)
    await stream.send_all(b"S" + count.to_bytes(4, "big") + frame)
    decoder = codec.FrameDecoder(MAX_FRAME)
    n = 0
    while n < count:
        decoder.receive_data(await stream.receive_some(65536))
        while (f := decoder.next_frame()) is not codec.NEED_DATA:
            codec.loads(f)
            n += 1
    await stream.aclose()
    return n


# --- the run -----------------------------------------------------------------------------


async def run(quick: bool) -> dict[str, Any]:
    n_rt = 2000 if quick else 20000
    n_tokens = 5000 if quick else 50000
    tmp = tempfile.mkdtemp(prefix="atomic-bench-")
    results: dict[str, Any] = {"round_trip_us": {}, "frames_per_s": {}}
    words = " ".join(["tok"] * n_tokens)
    async with trio.open_nursery() as nursery:
        await nursery.start(bare_echo_server, f"{tmp}/echo.sock")
        await nursery.start(json_echo_server, f"{tmp}/json.sock")
        ping_frame = codec.encode_message({"type": "ping", "id": 1}, MAX_FRAME)
        echo = await trio.open_unix_socket(f"{tmp}/echo.sock")
        json_echo = await trio.open_unix_socket(f"{tmp}/json.sock")
        json_decoder = codec.FrameDecoder(MAX_FRAME)
        rid = [0]

        for size in (1, 4):
            settings = config.load(env={}, overrides={
                "ipc_socket": f"{tmp}/agent{size}.sock", "data_dir": tmp, "provider": "replay",
                "ipc_pool_size": size, "max_tokens": n_tokens + 10, "ipc_health_interval_s": 3600})
            replay = ReplayProvider(words)
            scope = trio.CancelScope()

            async def agent(settings=settings, replay=replay, scope=scope, task_status=trio.TASK_STATUS_IGNORED):
                with scope:
                    await serve_agent(settings, providers={"replay": replay}, task_status=task_status)

            await nursery.start(agent)
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            while pool.statistics().connected < size:
                await trio.sleep(0.01)

            if size == 1:
                tiny = ReplayProvider("ok")
                pool_tiny = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
                replay._words, saved = tiny._words, replay._words
                results["round_trip_us"] = await interleaved({
                    "bare echo": lambda: bare_round_trip(echo, ping_frame),
                    "framed JSON echo": lambda: json_round_trip(json_echo, json_decoder, rid),
                    "pool ping/pong": pool.ping,
                    "pool generate (1 token)": lambda pool=pool, req=pool_tiny: pool.generate(req),
                }, n_rt)
                replay._words = saved
                await echo.aclose()
                await json_echo.aclose()

            token_frame = codec.encode_message({"type": "token", "id": 1, "text": "tok "}, MAX_FRAME)
            start = time.perf_counter()
            async with trio.open_nursery() as inner:
                for _ in range(size):
                    inner.start_soon(bare_stream, f"{tmp}/echo.sock", token_frame, n_tokens)
            results["frames_per_s"][f"bare stream x{size}"] = size * n_tokens / (time.perf_counter() - start)

            counts = [0, 0]  # frames, tokens

            def on_token(text: str, counts=counts) -> None:
                counts[0] += 1
                counts[1] += text.count("tok")

            request = {"messages": [{"role": "user", "content": "x"}]}
            start = time.perf_counter()
            async with trio.open_nursery() as inner:
                for _ in range(size):
                    inner.start_soon(pool.generate, request, on_token)
            elapsed = time.perf_counter() - start
            delivered = counts[1]  # the agent joins deltas that come < 1 ms apart into one frame
            assert delivered == size * n_tokens, counts
            results["frames_per_s"][f"pool token stream x{size}"] = delivered / elapsed
            results.setdefault("token_frames", {})[f"pool token stream x{size}"] = counts[0]
            await pool.aclose()
            scope.cancel()
        nursery.cancel_scope.cancel()
    return results


async def tls_round_trips(quick: bool) -> dict[str, list[float]]:
    """Round trips through the pool to an agent on TCP, plain and TLS (with the token)."""
    import trustme

    n = 2000 if quick else 20000
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="atomic-bench-"))
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp / "key.pem"))
    tls = {"ipc_tls_cert": str(tmp / "cert.pem"), "ipc_tls_key": str(tmp / "key.pem"), "ipc_token": "bench"}
    request = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    kinds: dict[str, Callable[[], Awaitable[Any]]] = {}
    async with trio.open_nursery() as nursery:
        for label, extra in (("TCP", {}), ("TCP+TLS", tls)):
            settings = config.load(env={}, overrides={
                "ipc_tcp": "127.0.0.1:0", "data_dir": str(tmp), "provider": "replay", "ipc_pool_size": 1,
                "ipc_health_interval_s": 3600, **extra})
            server = await nursery.start(lambda task_status, s=settings: serve_agent(
                s, providers={"replay": ReplayProvider("ok")}, task_status=task_status))
            host, port = server.address
            client = settings.replace(ipc_tcp=f"{host}:{port}", ipc_tls_cert=None, ipc_tls_key=None,
                                      ipc_tls_ca=str(tmp / "ca.pem") if extra else None)
            pool = AgentPool(client)
            await nursery.start(pool.run)
            while pool.statistics().connected < 1:
                await trio.sleep(0.01)
            kinds[f"pool ping/pong ({label})"] = pool.ping
            kinds[f"pool generate, 1 token ({label})"] = lambda pool=pool: pool.generate(request)
        out = await interleaved(kinds, n)
        nursery.cancel_scope.cancel()
    return out


def _print_tls(rt: dict[str, list[float]], summary: dict[str, Any]) -> None:
    print(f"\n{'agent over TCP (1 connection)':36} {'p50 us':>9} {'p99 us':>9} {'TLS cost p50':>13}")
    summary["tls"] = {}
    for what in ("pool ping/pong", "pool generate, 1 token"):
        plain, secure = rt[f"{what} (TCP)"], rt[f"{what} (TCP+TLS)"]
        p50, s50 = pct(plain, 0.5), pct(secure, 0.5)
        print(f"{what + ' (TCP)':36} {p50:9.1f} {pct(plain, 0.99):9.1f}")
        print(f"{what + ' (TCP+TLS)':36} {s50:9.1f} {pct(secure, 0.99):9.1f} {s50 - p50:+9.1f} us "
              f"({s50 / p50:.2f}x)")
        summary["tls"][what] = {"tcp_p50_us": p50, "tls_p50_us": s50, "tcp_p99_us": pct(plain, 0.99),
                                "tls_p99_us": pct(secure, 0.99), "cost_p50_us": s50 - p50, "ratio_p50": s50 / p50}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--json", metavar="PATH", help="write the results here")
    ap.add_argument("--only", choices=("tls",), help="only the TLS round trips")
    args = ap.parse_args(argv)
    if args.only == "tls":
        summary: dict[str, Any] = {}
        _print_tls(trio.run(tls_round_trips, args.quick), summary)
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    results = trio.run(run, args.quick)

    rt = results["round_trip_us"]
    base = statistics.median(rt["bare echo"])
    print(f"codec: {'Cython' if _fast.USING_EXTENSIONS.get('codec') else 'pure Python'}")
    print(f"{'round trip':28} {'p50 us':>9} {'p99 us':>9} {'p50 vs bare':>12}")
    summary = {"codec_extension": _fast.USING_EXTENSIONS.get("codec"), "round_trip": {}, "frames_per_s": {}}
    for name, samples in rt.items():
        p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
        summary["round_trip"][name] = {"p50_us": p50, "p99_us": p99, "ratio_p50": p50 / base}
        print(f"{name:28} {p50:9.1f} {p99:9.1f} {p50 / base:11.2f}x")
    print(f"\n{'throughput':28} {'tokens/s':>12} {'vs bare':>9}  (pool frames: {results.get('token_frames')})")
    fps = results["frames_per_s"]
    for name, value in fps.items():
        size = name.rsplit("x", 1)[1]
        ratio = value / fps[f"bare stream x{size}"]
        summary["frames_per_s"][name] = {"frames_per_s": value, "ratio": ratio}
        print(f"{name:28} {value:12,.0f} {ratio:8.2f}x")
    ping_ratio = summary["round_trip"]["pool ping/pong"]["ratio_p50"]
    summary["target_met"] = ping_ratio <= 1.3
    floor = summary["round_trip"]["framed JSON echo"]["ratio_p50"]
    print(f"\ntarget: pool ping p50 within 1.3x of bare echo: {'met' if ping_ratio <= 1.3 else 'NOT met'}"
          f" ({ping_ratio:.2f}x; the framed JSON echo floor is {floor:.2f}x)")
    _print_tls(trio.run(tls_round_trips, args.quick), summary)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
