"""The ordered heart of the job queue: the pure-Python reference twin.

:class:`QueueCore` holds item ids ordered by ``(key, seq)`` and answers the four questions
the queue asks of it: which comes next (``pop``), drop this one (``remove``), how many are
ahead of this one (``position``), and how many are there (``len``). It knows nothing of
priorities, clocks or Trio; :mod:`atomic.queue` turns those into keys.

``atomic/_fast/_queue_core.pyx`` is its Cython twin with the same behaviour;
``atomic._fast.load("queue_core")`` chooses between them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Hashable

__all__ = ["QueueCore"]

# A bucket splits in two when it grows past 2 * _LOAD entries.
_LOAD = 512


class QueueCore:
    """Item ids in ascending ``(key, seq)`` order.

    ``seq`` must be unique per item (the queue's insertion counter); it breaks ties between
    equal keys, so equal keys come out in ``seq`` order.

    Shaped as a bucketed sorted list (the sortedcontainers idea): a list of sorted buckets
    of at most ``2 * _LOAD`` entries, with the last entry of each bucket kept in ``_maxes``.
    One ``bisect`` over ``_maxes`` finds the bucket, one over the bucket finds the slot, so
    push, remove and position are O(log n + _LOAD) with the list moves done in C, and
    ``position`` is the index in the bucket plus the lengths of the buckets before it
    (n / _LOAD of them). A heap would make ``pop`` cheaper but cannot answer ``position``
    without sorting.
    """

    __slots__ = ("_buckets", "_index", "_maxes")

    def __init__(self) -> None:
        self._buckets: list[list[tuple[float, int, Hashable]]] = []
        self._maxes: list[tuple[float, int, Hashable]] = []
        self._index: dict[Hashable, tuple[float, int, Hashable]] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.QueueCore len={len(self._index)} buckets={len(self._buckets)}>"

    def push(self, key: float, seq: int, item_id: Hashable) -> None:
        """Add ``item_id`` with sort key ``(key, seq)``. ValueError if it is already in."""
        if item_id in self._index:
            raise ValueError(f"{item_id!r} is already queued")
        entry = (float(key), int(seq), item_id)
        self._index[item_id] = entry
        buckets, maxes = self._buckets, self._maxes
        if not buckets:
            buckets.append([entry])
            maxes.append(entry)
            return
        i = bisect_left(maxes, entry)
        if i == len(maxes):
            i -= 1
            bucket = buckets[i]
            bucket.append(entry)
            maxes[i] = entry
        else:
            bucket = buckets[i]
            insort(bucket, entry)
        if len(bucket) >= 2 * _LOAD:
            half = bucket[_LOAD:]
            del bucket[_LOAD:]
            buckets.insert(i + 1, half)
            maxes[i] = bucket[-1]
            maxes.insert(i + 1, half[-1])

    def pop(self) -> Hashable:
        """Remove and return the id with the smallest ``(key, seq)``. IndexError if empty."""
        buckets = self._buckets
        if not buckets:
            raise IndexError("pop from an empty QueueCore")
        bucket = buckets[0]
        entry = bucket.pop(0)
        if not bucket:
            del buckets[0]
            del self._maxes[0]
        del self._index[entry[2]]
        return entry[2]

    def peek(self) -> Hashable:
        """The id ``pop`` would return, left in place. IndexError if empty."""
        if not self._buckets:
            raise IndexError("peek at an empty QueueCore")
        return self._buckets[0][0][2]

    def remove(self, item_id: Hashable) -> bool:
        """Drop ``item_id``; False when it was not queued."""
        entry = self._index.pop(item_id, None)
        if entry is None:
            return False
        i, j = self._locate(entry)
        bucket = self._buckets[i]
        del bucket[j]
        if not bucket:
            del self._buckets[i]
            del self._maxes[i]
        elif j == len(bucket):
            self._maxes[i] = bucket[-1]
        return True

    def position(self, item_id: Hashable) -> int | None:
        """How many items come out before ``item_id``; None when it is not queued."""
        entry = self._index.get(item_id)
        if entry is None:
            return None
        i, j = self._locate(entry)
        return j + sum(map(len, self._buckets[:i]))

    def _locate(self, entry: tuple[float, int, Hashable]) -> tuple[int, int]:
        i = bisect_left(self._maxes, entry)
        return i, bisect_left(self._buckets[i], entry)
