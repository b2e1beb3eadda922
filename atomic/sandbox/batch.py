"""Batch lanes: which run of a batch each runner sandbox takes next.

Bookkeeping only (decide, then act): the controller opens ``count`` lanes, each a
sequence of runner sandboxes, and each lane asks :meth:`Lanes.take` for its next run,
preferring the image of the sandbox it already has, so a lane changes sandboxes only
when its image has no runs left. Runs are handed out as lanes free up (a slow run
holds up only its own lane); results go back to their index, so the order of the
answer is the order of the request.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..errors import LanguageUnavailable, SandboxError

T = TypeVar("T")


class Lanes(Generic[T]):
    def __init__(self, items: list[tuple[int, str, T]], lanes: int) -> None:
        self._by_image: dict[str, deque[tuple[int, str, T]]] = {}
        for item in items:
            self._by_image.setdefault(item[1], deque()).append(item)
        self.count = min(max(1, lanes), len(items))
        self.taken = 0

    def __repr__(self) -> str:
        left = {image: len(q) for image, q in self._by_image.items()}
        return f"<Lanes count={self.count} taken={self.taken} left={left}>"

    def take(self, image: str | None = None) -> tuple[int, str, T] | None:
        """The next run: of ``image`` when given (None if it has none left), else of the
        image with the most runs left."""
        if image is not None:
            queue = self._by_image.get(image)
        else:
            queue = max(self._by_image.values(), key=len, default=None)
        if not queue:
            return None
        item = queue.popleft()
        if not queue:
            del self._by_image[item[1]]
        self.taken += 1
        return item


async def run_lane(
    lanes: Lanes[T],
    results: list[Any],
    sandbox: Callable[[str, T], contextlib.AbstractAsyncContextManager[Any]],
    run: Callable[[Any, T], Awaitable[Any]],
) -> None:
    """One lane: a sandbox after another (``sandbox(image, first run)``), each running
    the lane's runs of its image in turn (``run(session, item)``), until none is left.
    A run's engine failure is its result; a sandbox that breaks is replaced."""
    pending = lanes.take()
    while pending is not None:
        image, first = pending[1], pending[2]
        try:
            async with sandbox(image, first) as sess:
                while pending is not None:
                    i, _, item = pending
                    pending = None
                    try:
                        results[i] = await run(sess, item)
                    except SandboxError as exc:
                        results[i] = exc
                    if sess.broken:
                        break
                    pending = lanes.take(image)
        except (SandboxError, LanguageUnavailable) as exc:
            if pending is not None:  # the sandbox for it never started
                results[pending[0]] = exc
                pending = None
        if pending is None:
            pending = lanes.take()
