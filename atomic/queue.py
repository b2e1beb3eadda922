"""The job queue: three priority classes, FIFO within each, aging so LOW is never starved.

Channel-shaped, like trio's ``_channel.py``: :meth:`JobQueue.put_nowait` and
:meth:`JobQueue.get_nowait` hold all the logic and are synchronous; :meth:`JobQueue.get`
adds the checkpoint and parks until an item arrives. Nothing here sleeps or times out:
a caller that wants a bound wraps ``get`` in ``trio.move_on_after``.

Ordering: an item's sort key is ``enqueue time + class offset`` (HIGH 0, NORMAL
``aging_s``, LOW ``2 * aging_s``), ties broken by an insertion counter. Within one class
keys rise with time, so the class is FIFO; across classes a job that has waited
``aging_s`` seconds ranks with a fresh job one class above it, so a LOW job waiting more
than ``2 * aging_s`` comes out before a fresh HIGH one. The key never changes once
given, so the ordered structure (:mod:`atomic.queue_core`, or its Cython twin) needs no
re-sorting as time passes.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import outcome
import trio

from . import _fast, config
from .errors import QueueFull, ValidationError

__all__ = ["JobQueue", "Priority", "QueueStatistics"]

_core = _fast.load("queue_core")



class Priority(enum.IntEnum):
    """Queue classes; the value is the number of ``aging_s`` steps a class starts behind."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: str | Priority) -> Priority:
        """``"high"`` -> ``Priority.HIGH``; ValidationError naming ``priority`` otherwise."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        raise ValidationError("priority", f"expected one of low, normal, high, not {value!r}")

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class QueueStatistics:
    """What the metrics read from a :class:`JobQueue`."""

    depth: int
    capacity: int
    by_priority: dict[str, int]
    getters_waiting: int
    total_put: int
    total_got: int
    rejected: int
    drain_rate_per_s: float


class JobQueue:
    """Bounded priority queue of job ids. See the module docstring for the ordering.

    ``on_get(job_id, waited_s)`` (settable) is called for every item handed out, with the
    seconds it spent queued; ``last_wait`` holds the latest such value.
    """

    def __init__(
        self,
        capacity: int,
        aging_s: float,
        clock: Callable[[], float] = trio.current_time,
        *,
        drain_window_s: float = config.default("queue_drain_window_s"),
        retry_after_max_s: int = config.default("queue_retry_after_max_s"),
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if aging_s <= 0:
            raise ValueError("aging_s must be above 0")
        self.capacity = capacity
        self.aging_s = aging_s
        self._clock = clock
        # Time constant of the drain-rate estimate: gets older than this weigh 1/e as much.
        self.drain_window_s = drain_window_s
        self.retry_after_max_s = retry_after_max_s
        self._core = _core.QueueCore()
        self._seq = 0
        self._queued: dict[str, tuple[Priority, float]] = {}  # id -> (class, enqueued at)
        self._counts = [0, 0, 0]
        self._getters: OrderedDict[trio.lowlevel.Task, None] = OrderedDict()
        self._closed = False
        self.total_put = 0
        self.total_got = 0
        self.rejected = 0
        self.on_get: Callable[[str, float], None] | None = None
        self.last_wait: float | None = None
        # Exponentially decayed count of gets; divided by the decayed length of the window
        # observed so far it is the drain rate, unbiased while the queue is young.
        self._decayed_gets = 0.0
        self._decayed_at: float | None = None
        self._born: float | None = None

    # --- the logic -------------------------------------------------------------------

    def put_nowait(
        self,
        job_id: str,
        priority: Priority | str,
        *,
        enqueued_at: float | None = None,
        force: bool = False,
    ) -> None:
        """Queue ``job_id``, or hand it straight to a waiting getter.

        ``enqueued_at`` (queue clock) backdates an item re-queued after a restart so it
        keeps the age it had; ``force`` admits it past capacity (a job accepted before the
        restart is not refused now). Raises :class:`QueueFull` with a ``retry_after`` hint
        at capacity, ``trio.ClosedResourceError`` after :meth:`close`, ValueError if the
        id is already queued.
        """
        if self._closed:
            raise trio.ClosedResourceError("the job queue is closed")
        prio = Priority.parse(priority)
        if job_id in self._queued:
            raise ValueError(f"job {job_id!r} is already queued")
        now = self._clock()
        self._observe_start(now)
        since = now if enqueued_at is None else enqueued_at
        if self._getters:
            task, _ = self._getters.popitem(last=False)
            task.custom_sleep_data = None
            self.total_put += 1
            self._handed_out(job_id, now - since, now)
            trio.lowlevel.reschedule(task, outcome.Value(job_id))
            return
        if len(self._queued) >= self.capacity and not force:
            self.rejected += 1
            raise QueueFull(retry_after=self.retry_after(now))
        self._seq += 1
        self._core.push(since + prio * self.aging_s, self._seq, job_id)
        self._queued[job_id] = (prio, since)
        self._counts[prio] += 1
        self.total_put += 1

    def get_nowait(self) -> str:
        """The next job id. ``trio.WouldBlock`` when empty; ``trio.EndOfChannel`` when
        empty and closed."""
        if not self._queued:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        job_id: str = self._core.pop()
        prio, since = self._queued.pop(job_id)
        self._counts[prio] -= 1
        now = self._clock()
        self._handed_out(job_id, now - since, now)
        return job_id

    def remove(self, job_id: str) -> bool:
        """Take a queued job out at once (it was cancelled); False if it was not queued."""
        entry = self._queued.pop(job_id, None)
        if entry is None:
            return False
        self._core.remove(job_id)
        self._counts[entry[0]] -= 1
        return True

    def position(self, job_id: str) -> int | None:
        """How many jobs come out before ``job_id`` (0: next); None if not queued."""
        if job_id not in self._queued:
            return None
        return self._core.position(job_id)

    def close(self) -> None:
        """Refuse new puts; getters parked now (and any later, once it is drained) get
        ``trio.EndOfChannel``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in self._getters:
            task.custom_sleep_data = None
            trio.lowlevel.reschedule(task, outcome.Error(trio.EndOfChannel()))
        self._getters.clear()

    # --- the waiting -----------------------------------------------------------------

    async def get(self) -> str:
        """The next job id, parking until one is put (getters are served in arrival order)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            value = self.get_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return value

        task = trio.lowlevel.current_task()
        self._getters[task] = None
        task.custom_sleep_data = self

        def abort_fn(_: object) -> trio.lowlevel.Abort:
            task.custom_sleep_data = None
            del self._getters[task]
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort_fn)

    async def put(
        self,
        job_id: str,
        priority: Priority | str,
        *,
        enqueued_at: float | None = None,
        force: bool = False,
    ) -> None:
        """:meth:`put_nowait` plus a checkpoint. A full queue rejects rather than parks:
        the API answers 429, it does not hold the request open."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self.put_nowait(job_id, priority, enqueued_at=enqueued_at, force=force)
        await trio.lowlevel.cancel_shielded_checkpoint()

    # --- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._queued

    @property
    def closed(self) -> bool:
        return self._closed

    def by_priority(self) -> dict[str, int]:
        return {p.label: self._counts[p] for p in Priority}

    def drain_rate(self, now: float | None = None) -> float:
        """Gets per second, exponentially weighted over about ``drain_window_s``."""
        if self._decayed_at is None or self._born is None:
            return 0.0
        now = self._clock() if now is None else now
        window = self.drain_window_s
        observed = 1.0 - math.exp(-max(now - self._born, 0.0) / window)
        if observed <= 0.0:
            return 0.0
        decayed = self._decayed_gets * math.exp(-max(now - self._decayed_at, 0.0) / window)
        return decayed / window / observed

    def retry_after(self, now: float | None = None) -> int:
        """Whole seconds until a slot is likely free: one item's drain time, 1 s at least."""
        rate = self.drain_rate(now)
        if rate <= 0.0:
            return self.retry_after_max_s
        return max(1, min(self.retry_after_max_s, math.ceil(1.0 / rate)))

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            depth=len(self._queued),
            capacity=self.capacity,
            by_priority=self.by_priority(),
            getters_waiting=len(self._getters),
            total_put=self.total_put,
            total_got=self.total_got,
            rejected=self.rejected,
            drain_rate_per_s=self.drain_rate(),
        )

    def __repr__(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.by_priority().items())
        state = " closed" if self._closed else ""
        return (
            f"<JobQueue depth={len(self._queued)}/{self.capacity} {counts} "
            f"getters={len(self._getters)} put={self.total_put} got={self.total_got} "
            f"rejected={self.rejected}{state}>"
        )

    # --- internals -------------------------------------------------------------------

    def _observe_start(self, now: float) -> None:
        if self._born is None:
            self._born = now

    def _handed_out(self, job_id: str, waited: float, now: float) -> None:
        self.total_got += 1
        self._observe_start(now)
        if self._decayed_at is None:
            self._decayed_gets = 1.0
        else:
            elapsed = max(now - self._decayed_at, 0.0)
            self._decayed_gets = self._decayed_gets * math.exp(-elapsed / self.drain_window_s) + 1.0
        self._decayed_at = now
        self.last_wait = waited
        if self.on_get is not None:
            self.on_get(job_id, waited)
