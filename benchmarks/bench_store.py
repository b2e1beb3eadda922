"""Job store: puts per second, one caller at a time against many at once (group commit).

    .venv/bin/python benchmarks/bench_store.py [--n 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atomic.contract import JobDocument, JobSpec
from atomic.store import JobStore


def _doc(i: int) -> JobDocument:
    return JobDocument(id=f"job-{i:06d}", state="QUEUED", priority="normal", created_at="2025-01-01T00:00:00Z",
                       request=JobSpec(prompt="write a program " * 20, language="python"))


async def _run(n: int, concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(Path(tmp) / "bench.db")
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            t0 = time.perf_counter()
            if concurrency == 1:
                for i in range(n):
                    await store.put(_doc(i))
            else:
                limit = trio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with limit:
                        await store.put(_doc(i))

                async with trio.open_nursery() as inner:
                    for i in range(n):
                        inner.start_soon(one, i)
            elapsed = time.perf_counter() - t0
            stats = store.statistics()
            nursery.cancel_scope.cancel()
    return n / elapsed, stats.avg_batch_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    print(f"JobStore.put, n={args.n:,}")
    print(f"{'concurrent callers':<20}{'puts/s':>12}{'avg batch':>12}")
    for c in (1, 10, 100, 1000):
        rate, batch = trio.run(_run, args.n, c)
        print(f"{c:<20}{rate:>12,.0f}{batch:>12.1f}")


if __name__ == "__main__":
    main()
