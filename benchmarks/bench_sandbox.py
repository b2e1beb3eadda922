"""Sandbox latency: Atomic's cold and warm runs beside bare Docker, in the same process.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs N] [--json PATH]

Each row times ``python3 -c 'print(1)'`` end to end, N times, sequentially:
  docker run --rm   SDK containers.run(remove=True): create, start, wait, logs, remove
  docker exec       SDK exec_create + exec_start into one running container
  atomic cold       SandboxController.execute without a warm pool (full confinement)
  atomic warm       SandboxController.execute with a ready warm container (pool refilled
                    between runs, untimed)
The four are interleaved round by round. Atomic's runs return before their container
is removed (removal happens in the background), docker run --rm waits for it.
Targets: cold p50 <= 1.1x docker run --rm; warm p50 <= 1.3x docker exec.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from atomic import config
from atomic.sandbox import RunSpec, SandboxController

CMD = ["python3", "-c", "print(1)"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


async def measure(client, settings: config.Settings, runs: int) -> dict[str, list[float]]:
    """All four, interleaved per round, so a busy machine weighs on each alike."""
    image = settings.sandbox_image
    rows: dict[str, list[float]] = {"docker run --rm": [], "docker exec": [], "atomic cold": [], "atomic warm": []}
    cold = SandboxController(settings.replace(warm_pool_size=0))
    warm = SandboxController(settings.replace(warm_pool_size=1))
    box = await trio.to_thread.run_sync(
        lambda: client.containers.run(image, ["sleep", "infinity"], detach=True, labels={"io.atomic.bench": "1"})
    )

    def bare_run() -> None:
        assert client.containers.run(image, CMD, remove=True).strip() == b"1"

    def bare_exec() -> None:
        eid = client.api.exec_create(box.id, CMD)["Id"]
        assert client.api.exec_start(eid).strip() == b"1"

    async def quiet() -> None:
        # Untimed: refills and removals of the previous round finish first.
        with trio.fail_after(60):
            while (
                warm.status()["warm"] < 1
                or warm.statistics().containers_alive > 1
                or cold.statistics().containers_alive > 0
            ):
                await trio.sleep(0.01)

    async def timed(name: str, fn) -> None:
        await quiet()
        t = time.perf_counter()
        await fn()
        rows[name].append((time.perf_counter() - t) * 1000)

    async def atomic(ctl: SandboxController) -> None:
        res = await ctl.execute(RunSpec(files=[], command=CMD))
        assert res.stdout == "1\n" and res.termination == "exited", res

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(cold.run)
            await nursery.start(warm.run)
            for _ in range(runs):
                await timed("docker run --rm", lambda: trio.to_thread.run_sync(bare_run))
                await timed("docker exec", lambda: trio.to_thread.run_sync(bare_exec))
                await timed("atomic cold", lambda: atomic(cold))
                await timed("atomic warm", lambda: atomic(warm))
            assert warm.statistics().warm_hits == runs
            nursery.cancel_scope.cancel()
    finally:
        box.remove(force=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    import docker

    tmp = tempfile.mkdtemp(prefix="atomic-bench-")
    settings = config.load(overrides={"data_dir": tmp})
    client = docker.from_env()
    # Warm-up: image cache, Python bytecode, SDK connections.
    client.containers.run(settings.sandbox_image, CMD, remove=True)

    rows = trio.run(measure, client, settings, args.runs)
    base = {"atomic cold": "docker run --rm", "atomic warm": "docker exec"}
    target = {"atomic cold": 1.1, "atomic warm": 1.3}
    report = {"runs": args.runs, "results": {}}
    print(f"{'':18}{'p50 ms':>9}{'p99 ms':>9}{'ratio p50':>11}{'target':>8}")
    for name, xs in rows.items():
        p50, p99 = statistics.median(xs), pct(xs, 99)
        entry = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}
        line = f"{name:18}{p50:9.1f}{p99:9.1f}"
        if name in base:
            ratio = p50 / statistics.median(rows[base[name]])
            entry.update(ratio_p50=round(ratio, 3), baseline=base[name], target=target[name])
            line += f"{ratio:10.2f}x{target[name]:7.1f}x"
        print(line)
        report["results"][name] = entry
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    client.close()


if __name__ == "__main__":
    main()
