"""The idle runner pool's bookkeeping (no engine): what is kept, reused, expired."""

from __future__ import annotations

from dataclasses import dataclass

from atomic.sandbox.runners import RunnerPool


@dataclass(eq=False)
class Fake:
    broken: bool = False
    ended: bool = False


def test_kept_then_reused_most_recent_first():
    pool: RunnerPool[Fake] = RunnerPool(keep_s=10, per_image=2)
    a, b = Fake(), Fake()
    assert pool.put("img", a, 0.0) == [] and pool.put("img", b, 1.0) == []
    assert pool.take("other") == (None, [])
    assert pool.take("img") == (b, [])
    assert pool.take("img") == (a, [])
    assert pool.take("img") == (None, [])
    assert pool.statistics().reused == 2


def test_broken_ended_and_surplus_sandboxes_are_closed():
    pool: RunnerPool[Fake] = RunnerPool(keep_s=10, per_image=1)
    broken = Fake(broken=True)
    assert pool.put("img", broken, 0.0) == [broken]
    a, b = Fake(), Fake()
    pool.put("img", a, 0.0)
    assert pool.put("img", b, 1.0) == [a]  # the oldest goes past per_image
    b.ended = True  # its runner died while idle
    assert pool.take("img") == (None, [b])
    assert RunnerPool(keep_s=0, per_image=4).put("img", a, 0.0) == [a]


def test_expiry():
    pool: RunnerPool[Fake] = RunnerPool(keep_s=5, per_image=4)
    a, b = Fake(), Fake()
    pool.put("x", a, 0.0)
    pool.put("y", b, 3.0)
    assert pool.expired(4.9) == []
    assert pool.expired(5.0) == [a]
    assert len(pool) == 1 and pool.expired(8.0) == [b] and len(pool) == 0
    assert pool.statistics().expired == 2
    pool.put("x", a, 9.0)
    assert pool.drain() == [a] and len(pool) == 0
