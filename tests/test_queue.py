"""The queue core (both twins) and the JobQueue built on it."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

import atomic._fast
from atomic.errors import QueueFull, ValidationError
from atomic.queue import JobQueue, Priority, QueueStatistics

TWINS = atomic._fast.twins("queue_core")


def test_both_twins_are_built() -> None:
    # The extension must be built for the twin tests to mean anything.
    assert [m.__name__ for m in TWINS] == ["atomic.queue_core", "atomic._fast._queue_core"]


@pytest.mark.parametrize("mod", TWINS, ids=lambda m: m.__name__)
class TestQueueCore:
    def test_empty(self, mod: Any) -> None:
        core = mod.QueueCore()
        assert len(core) == 0
        with pytest.raises(IndexError):
            core.pop()
        with pytest.raises(IndexError):
            core.peek()
        assert core.remove("x") is False
        assert core.position("x") is None
        assert "x" not in core

    def test_order_by_key_then_seq(self, mod: Any) -> None:
        core = mod.QueueCore()
        core.push(2.0, 1, "b")
        core.push(1.0, 2, "a")
        core.push(2.0, 0, "c")
        core.push(1.5, 3, "d")
        assert core.peek() == "a"
        assert [core.pop() for _ in range(4)] == ["a", "d", "c", "b"]
        assert len(core) == 0

    def test_duplicate_rejected(self, mod: Any) -> None:
        core = mod.QueueCore()
        core.push(1.0, 1, "a")
        with pytest.raises(ValueError):
            core.push(0.0, 2, "a")
        assert len(core) == 1

    def test_remove_and_reuse(self, mod: Any) -> None:
        core = mod.QueueCore()
        for i in range(5):
            core.push(float(i), i, f"j{i}")
        assert core.remove("j2") is True
        assert core.remove("j2") is False
        assert core.position("j3") == 2
        core.push(2.5, 9, "j2")  # an id may come back after it left
        assert [core.pop() for _ in range(5)] == ["j0", "j1", "j2", "j3", "j4"]
        core.push(1.0, 10, "again")  # and the emptied core works on
        assert core.position("again") == 0

    def test_property_against_brute_force(self, mod: Any) -> None:
        """Many random ops (enough to split and drop buckets) against a dict and min()."""
        rnd = random.Random(12345)
        core = mod.QueueCore()
        ref: dict[str, tuple[float, int]] = {}
        seq = 0
        for _ in range(20_000):
            r = rnd.random()
            if r < 0.5:
                seq += 1
                key = rnd.choice([rnd.random() * 100, float(rnd.randint(0, 5)), seq / 10])
                core.push(key, seq, f"j{seq}")
                ref[f"j{seq}"] = (key, seq)
            elif r < 0.7:
                if ref:
                    want = min(ref, key=ref.__getitem__)
                    assert core.pop() == want
                    del ref[want]
            elif r < 0.85:
                x = f"j{rnd.randint(0, seq + 2)}"
                assert core.remove(x) is (x in ref)
                ref.pop(x, None)
            else:
                x = f"j{rnd.randint(0, seq + 2)}"
                want_pos = None if x not in ref else sum(1 for v in ref.values() if v < ref[x])
                assert core.position(x) == want_pos
            assert len(core) == len(ref)
        for x in rnd.sample(sorted(ref), min(50, len(ref))):
            assert core.position(x) == sum(1 for v in ref.values() if v < ref[x])
        assert [core.pop() for _ in range(len(ref))] == sorted(ref, key=ref.__getitem__)

    def test_position_with_100k_queued(self, mod: Any) -> None:
        core = mod.QueueCore()
        n = 100_000
        for i in range(n):
            core.push(i + (i % 3) * 30.0, i, i)  # three interleaved classes
        # The ranks are known: key i + 30*(i%3) over all i; check a few exactly.
        keys = sorted((i + (i % 3) * 30.0, i) for i in range(n))
        rank = {seq: r for r, (_, seq) in enumerate(keys)}
        for i in (0, 1, 2, 77, 50_000, n - 1):
            assert core.position(i) == rank[i]


# --- JobQueue ----------------------------------------------------------------------


def test_priority_parse() -> None:
    assert Priority.parse("high") is Priority.HIGH
    assert Priority.parse(" Low ") is Priority.LOW
    assert Priority.parse(Priority.NORMAL) is Priority.NORMAL
    with pytest.raises(ValidationError) as info:
        Priority.parse("urgent")
    assert info.value.field == "priority"


async def test_fifo_within_class_and_priority_order(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=100, aging_s=30.0)
    for i in range(3):
        q.put_nowait(f"low{i}", "low")
        q.put_nowait(f"normal{i}", "normal")
        q.put_nowait(f"high{i}", Priority.HIGH)
    assert q.by_priority() == {"high": 3, "normal": 3, "low": 3}
    got = [q.get_nowait() for _ in range(9)]
    assert got == [f"high{i}" for i in range(3)] + [f"normal{i}" for i in range(3)] + [f"low{i}" for i in range(3)]
    with pytest.raises(trio.WouldBlock):
        q.get_nowait()


async def test_aging_low_beats_fresh_high(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=100, aging_s=10.0)
    t0 = trio.current_time()
    q.put_nowait("old-low", "low")
    await trio.sleep(20.0)  # exactly 2 * aging: a tie on key, the older (seq) wins
    q.put_nowait("high-at-tie", "high")
    await trio.sleep(0.5)
    q.put_nowait("fresh-high", "high")
    q.put_nowait("fresh-normal", "normal")
    assert trio.current_time() == t0 + 20.5
    assert q.position("old-low") == 0
    assert q.position("fresh-high") == 2
    assert [q.get_nowait() for _ in range(4)] == ["old-low", "high-at-tie", "fresh-high", "fresh-normal"]


async def test_aging_low_not_before_its_time(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=100, aging_s=10.0)
    q.put_nowait("low", "low")
    await trio.sleep(19.0)  # waited less than 2 * aging
    q.put_nowait("high", "high")
    q.put_nowait("normal", "normal")  # key now + 10 > low's key (t0 + 20): low first
    assert [q.get_nowait() for _ in range(3)] == ["high", "low", "normal"]


async def test_capacity_and_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=3, aging_s=30.0)
    for i in range(3):
        q.put_nowait(f"j{i}", "normal")
    with pytest.raises(QueueFull) as info:
        q.put_nowait("x", "normal")
    assert info.value.retry_after == 60  # nothing drained yet: the upper bound
    assert q.rejected == 1 and len(q) == 3
    q.put_nowait("recovered", "low", force=True)  # accepted before a restart: admitted anyway
    assert len(q) == 4 and q.remove("recovered")

    # Drain one item every 4 s for a while: the hint follows the rate (1 item / 4 s).
    n = 3
    for _ in range(30):
        await trio.sleep(4.0)
        q.get_nowait()
        q.put_nowait(f"j{n}", "normal")
        n += 1
    assert q.drain_rate() == pytest.approx(0.25, rel=0.05)
    with pytest.raises(QueueFull) as info:
        q.put_nowait("y", "high")
    assert info.value.retry_after == 4
    assert isinstance(info.value.retry_after, int)

    # A fast drain is bounded below by 1 s.
    for _ in range(200):
        await trio.sleep(0.01)
        q.get_nowait()
        q.put_nowait(f"j{n}", "normal")
        n += 1
    with pytest.raises(QueueFull) as info:
        q.put_nowait("z", "low")
    assert info.value.retry_after == 1


async def test_remove_and_position(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    for i in range(4):
        q.put_nowait(f"j{i}", "normal")
    assert q.position("j3") == 3
    assert q.remove("j1") is True
    assert q.remove("j1") is False
    assert q.position("j3") == 2
    assert q.position("j1") is None
    assert len(q) == 3 and q.by_priority()["normal"] == 3
    assert [q.get_nowait() for _ in range(3)] == ["j0", "j2", "j3"]
    assert q.position("j0") is None  # handed out: no longer queued


async def test_wait_time_recorded(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    seen: list[tuple[str, float]] = []
    q.on_get = lambda job_id, waited: seen.append((job_id, waited))
    q.put_nowait("a", "normal")
    await trio.sleep(2.5)
    q.put_nowait("b", "normal", enqueued_at=trio.current_time() - 7.0)  # re-queued after restart
    assert q.get_nowait() == "b"  # backdated: it has waited longer
    assert q.get_nowait() == "a"
    assert seen == [("b", 7.0), ("a", 2.5)]
    assert q.last_wait == 2.5


async def test_getters_park_and_wake_in_order(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    waits: list[float] = []
    q.on_get = lambda job_id, waited: waits.append(waited)
    got: list[tuple[int, str]] = []

    async def getter(n: int) -> None:
        got.append((n, await q.get()))

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(getter, n)
            await trio.testing.wait_all_tasks_blocked()
        assert q.statistics().getters_waiting == 3
        await trio.sleep(1.0)
        q.put_nowait("first", "low")
        q.put_nowait("second", "high")
        await trio.testing.wait_all_tasks_blocked()
        # Trio runs woken tasks in a random order: compare who got what, not who ran first.
        assert sorted(got) == [(0, "first"), (1, "second")]
        q.put_nowait("third", "normal")
    assert sorted(got) == [(0, "first"), (1, "second"), (2, "third")]
    assert waits == [0.0, 0.0, 0.0]  # handed straight to a waiting getter
    assert len(q) == 0 and q.statistics().getters_waiting == 0


async def test_get_returns_queued_at_once_and_cancel_leaves_no_getter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    q.put_nowait("a", "normal")
    assert await q.get() == "a"
    with trio.move_on_after(5.0) as scope:
        await q.get()
    assert scope.cancelled_caught
    assert q.statistics().getters_waiting == 0
    q.put_nowait("b", "normal")  # not handed to the cancelled getter
    assert len(q) == 1


async def test_close_wakes_getters_and_drains(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    ended: list[str] = []

    async def getter() -> None:
        with pytest.raises(trio.EndOfChannel):
            await q.get()
        ended.append("eoc")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(getter)
        nursery.start_soon(getter)
        await trio.testing.wait_all_tasks_blocked()
        q.close()
    assert ended == ["eoc", "eoc"]
    with pytest.raises(trio.ClosedResourceError):
        q.put_nowait("late", "normal")
    with pytest.raises(trio.EndOfChannel):
        q.get_nowait()
    q.close()  # idempotent

    q2 = JobQueue(capacity=10, aging_s=30.0)
    q2.put_nowait("left", "normal")
    q2.close()
    assert await q2.get() == "left"  # like a trio channel: what was queued still comes out
    with pytest.raises(trio.EndOfChannel):
        await q2.get()


async def test_statistics_and_repr(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=2, aging_s=30.0)
    await q.put("a", "high")
    await q.put("b", "low")
    with pytest.raises(QueueFull):
        await q.put("c", "low")
    q.get_nowait()
    stats = q.statistics()
    assert isinstance(stats, QueueStatistics)
    assert stats == QueueStatistics(
        depth=1, capacity=2, by_priority={"high": 0, "normal": 0, "low": 1}, getters_waiting=0,
        total_put=2, total_got=1, rejected=1, drain_rate_per_s=0.0,
    )
    with pytest.raises(AttributeError):
        stats.depth = 5  # type: ignore[misc]
    assert repr(q) == "<JobQueue depth=1/2 high=0 normal=0 low=1 getters=0 put=2 got=1 rejected=1>"


async def test_duplicate_put_rejected(autojump_clock: trio.testing.MockClock) -> None:
    q = JobQueue(capacity=10, aging_s=30.0)
    q.put_nowait("a", "normal")
    with pytest.raises(ValueError):
        q.put_nowait("a", "high")
    assert q.total_put == 1
