"""Idle runner sandboxes, kept for the next compiled, judged or batch run.

A runner sandbox (:mod:`.runner`) is the same for every run of its image: each job's
steps are fresh uids, killed and purged before the next step, and the session sets the
container's memory, process and CPU limits for each job. So a sandbox whose job ended
cleanly can serve the next one, from any request, instead of a new container: starting
a container costs the engine more CPU (0.3-1 s on a small machine) than most programs
take. A sandbox is kept ``keep_s`` seconds after its last job, at most ``per_image`` of
an image; one that broke or was cancelled mid-job is never kept.

Bookkeeping only (decide, then act): the controller opens and closes the sandboxes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Reusable(Protocol):
    broken: bool
    ended: bool


S = TypeVar("S", bound=Reusable)


@dataclass(frozen=True)
class RunnerStatistics:
    idle: int
    reused: int
    kept: int
    expired: int


class RunnerPool(Generic[S]):
    def __init__(self, keep_s: float, per_image: int) -> None:
        self.keep_s = keep_s
        self.per_image = per_image
        self._idle: dict[str, deque[tuple[S, float]]] = {}
        self._reused = self._kept = self._expired = 0

    def __repr__(self) -> str:
        return f"<RunnerPool idle={ {k: len(v) for k, v in self._idle.items()} } reused={self._reused}>"

    def __len__(self) -> int:
        return sum(len(q) for q in self._idle.values())

    def take(self, image: str) -> tuple[S | None, list[S]]:
        """The most recently used idle sandbox of ``image`` (or None), and the ones found
        dead on the way (to be closed)."""
        queue = self._idle.get(image)
        dead: list[S] = []
        while queue:
            sess, _ = queue.pop()
            if sess.broken or sess.ended:
                dead.append(sess)
                continue
            self._reused += 1
            return sess, dead
        return None, dead

    def put(self, image: str, sess: S, now: float) -> list[S]:
        """Keep ``sess``; returns what to close instead (it, when nothing is kept, or the
        oldest of its image past ``per_image``)."""
        if self.keep_s <= 0 or self.per_image <= 0 or sess.broken or sess.ended:
            return [sess]
        queue = self._idle.setdefault(image, deque())
        queue.append((sess, now))
        self._kept += 1
        out = []
        while len(queue) > self.per_image:
            out.append(queue.popleft()[0])
        return out

    def expired(self, now: float) -> list[S]:
        """Sandboxes idle for ``keep_s`` or more: no longer kept."""
        out: list[S] = []
        for image in list(self._idle):
            queue = self._idle[image]
            while queue and now - queue[0][1] >= self.keep_s:
                out.append(queue.popleft()[0])
            if not queue:
                del self._idle[image]
        self._expired += len(out)
        return out

    def drain(self) -> list[S]:
        out = [sess for queue in self._idle.values() for sess, _ in queue]
        self._idle.clear()
        return out

    def statistics(self) -> RunnerStatistics:
        return RunnerStatistics(idle=len(self), reused=self._reused, kept=self._kept, expired=self._expired)
