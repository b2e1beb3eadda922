"""Queue core: the Cython twin against the pure-Python reference.

    .venv/bin/python benchmarks/bench_queue.py [--n 100000] [--repeat 5]

Keys mirror the job queue's: enqueue time plus a class offset (HIGH 0, NORMAL aging,
LOW 2 * aging), so each class arrives in key order and the classes interleave. Only the
core's calls are timed (random choices are drawn beforehand), and the twins are measured
alternately, best of ``--repeat``, so a busy machine skews both alike.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atomic._fast

AGING = 30.0
Items = list[tuple[float, int, str]]


def _items(n: int, seed: int) -> Items:
    rnd = random.Random(seed)
    now = 0.0
    out = []
    for seq in range(n):
        now += rnd.expovariate(10.0)
        out.append((now + rnd.randrange(3) * AGING, seq, f"job-{seq}"))
    return out


def _fill(mod: Any, items: Items) -> Any:
    core = mod.QueueCore()
    push = core.push
    for key, seq, item in items:
        push(key, seq, item)
    return core


def bench_push(mod: Any, items: Items) -> tuple[int, float]:
    t0 = time.perf_counter()
    _fill(mod, items)
    return len(items), time.perf_counter() - t0


def bench_push_pop(mod: Any, items: Items) -> tuple[int, float]:
    t0 = time.perf_counter()
    core = _fill(mod, items)
    pop = core.pop
    for _ in range(len(items)):
        pop()
    return 2 * len(items), time.perf_counter() - t0


def bench_mix(mod: Any, items: Items) -> tuple[int, float]:
    """Half the items queued, then each push is followed by a pop (70%) or the removal of
    a random, maybe already gone, id (30%: a cancelled job)."""
    rnd = random.Random(7)
    half = len(items) // 2
    plan = [
        (key, seq, item, None if rnd.random() < 0.7 else items[rnd.randrange(seq + 1)][2])
        for key, seq, item in items[half:]
    ]
    core = _fill(mod, items[:half])
    push, pop, remove = core.push, core.pop, core.remove
    t0 = time.perf_counter()
    for key, seq, item, victim in plan:
        push(key, seq, item)
        if victim is None:
            pop()
        else:
            remove(victim)
    return 2 * len(plan), time.perf_counter() - t0


def bench_position(mod: Any, items: Items) -> tuple[int, float]:
    core = _fill(mod, items)
    rnd = random.Random(3)
    probes = [items[rnd.randrange(len(items))][2] for _ in range(20_000)]
    position = core.position
    t0 = time.perf_counter()
    for p in probes:
        position(p)
    return len(probes), time.perf_counter() - t0


WORKLOADS: list[tuple[str, Callable[[Any, Items], tuple[int, float]]]] = [
    ("push", bench_push),
    ("push+pop", bench_push_pop),
    ("push/pop/remove", bench_mix),
    ("position", bench_position),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    twins = atomic._fast.twins("queue_core")
    if len(twins) < 2:
        raise SystemExit("the Cython twin is not built: .venv/bin/python setup.py build_ext --inplace")
    items = _items(args.n, 1)
    print(f"QueueCore, n={args.n:,} (ops/s, best of {args.repeat})")
    print(f"{'workload':<17}{'python':>12}{'cython':>12}{'ratio':>8}")
    for name, fn in WORKLOADS:
        best = [0.0, 0.0]
        for _ in range(args.repeat):
            for i, mod in enumerate(twins):
                ops, secs = fn(mod, items)
                best[i] = max(best[i], ops / secs)
        print(f"{name:<17}{best[0]:>12,.0f}{best[1]:>12,.0f}{best[1] / best[0]:>7.1f}x")


if __name__ == "__main__":
    main()
