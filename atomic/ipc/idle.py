"""Noticing at once when the peer of an idle socket goes away, without a reader per socket.

The pool lends a connection to one request at a time, and that request reads its own
replies (no hand-off from a reader task, so no extra task switch per frame). An idle
connection then has no reader, yet a dead agent must be noticed at once, not at the next
request or health ping. An :class:`IdleWatch` holds the idle sockets and tells which of
them became readable (end of stream, or a frame nobody asked for).

On Linux one private epoll set holds them and a single task waits on its descriptor:
lending and returning a connection cost one ``epoll_ctl`` each, no task switch.
Elsewhere a task per idle period waits on the socket and is cancelled when the
connection is lent (cancelling frees the socket for the borrower synchronously).
"""

from __future__ import annotations

import select
from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

__all__ = ["IdleWatch", "open_idle_watch"]

K = TypeVar("K", bound=Hashable)

HAVE_EPOLL = hasattr(select, "epoll")


class IdleWatch(Generic[K]):
    """The interface: ``add``/``discard`` are synchronous, ``wait`` parks one task."""

    def add(self, key: K, sock: trio.socket.SocketType) -> None:
        """Watch ``sock`` (idle now) on behalf of ``key``."""
        raise NotImplementedError

    def discard(self, key: K) -> None:
        """Stop watching ``key``'s socket (it is lent, or closing). Idempotent."""
        raise NotImplementedError

    async def wait(self) -> list[K]:
        """Keys whose sockets became readable while watched (and still are watched)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __contains__(self, key: object) -> bool:
        raise NotImplementedError


class _EpollWatch(IdleWatch[K]):
    def __init__(self) -> None:
        self._ep = select.epoll()
        self._fds: dict[K, int] = {}
        self._keys: dict[int, K] = {}

    def __repr__(self) -> str:
        return f"<IdleWatch epoll watching={len(self._fds)}>"

    def __contains__(self, key: object) -> bool:
        return key in self._fds

    def add(self, key: K, sock: trio.socket.SocketType) -> None:
        if key in self._fds:
            return
        fd = sock.fileno()
        self._ep.register(fd, select.EPOLLIN)
        self._fds[key] = fd
        self._keys[fd] = key

    def discard(self, key: K) -> None:
        fd = self._fds.pop(key, None)
        if fd is None:
            return
        del self._keys[fd]
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):  # already closed: the kernel dropped it
            pass

    async def wait(self) -> list[K]:
        while True:
            await trio.lowlevel.wait_readable(self._ep)
            keys = self._keys
            ready = [keys[fd] for fd, _ in self._ep.poll(0) if fd in keys]
            if ready:
                return ready

    def close(self) -> None:
        if not self._ep.closed:
            trio.lowlevel.notify_closing(self._ep)
            self._ep.close()
        self._fds.clear()
        self._keys.clear()


class _TaskWatch(IdleWatch[K]):
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._scopes: dict[K, trio.CancelScope] = {}
        self._ready: list[K] = []
        self._event = trio.Event()

    def __repr__(self) -> str:
        return f"<IdleWatch tasks watching={len(self._scopes)}>"

    def __contains__(self, key: object) -> bool:
        return key in self._scopes

    def add(self, key: K, sock: trio.socket.SocketType) -> None:
        if key in self._scopes:
            return
        scope = self._scopes[key] = trio.CancelScope()
        self._nursery.start_soon(self._watch_one, key, sock, scope)

    def discard(self, key: K) -> None:
        scope = self._scopes.pop(key, None)
        if scope is not None:
            scope.cancel()  # the wait's abort runs now: the socket is free for the borrower

    async def _watch_one(self, key: K, sock: trio.socket.SocketType, scope: trio.CancelScope) -> None:
        if scope.cancel_called:  # lent before this task first ran: the borrower may be reading
            return
        with scope:
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                pass
        if not scope.cancel_called and self._scopes.get(key) is scope:
            self._ready.append(key)
            self._event.set()

    async def wait(self) -> list[K]:
        while True:
            ready = [k for k in self._ready if k in self._scopes]
            self._ready.clear()
            if ready:
                return ready
            await self._event.wait()
            self._event = trio.Event()

    def close(self) -> None:
        for scope in self._scopes.values():
            scope.cancel()
        self._scopes.clear()


def open_idle_watch(nursery: trio.Nursery, *, epoll: bool | None = None) -> IdleWatch[K]:
    """The epoll watch where the platform has it (or ``epoll=True``), else the task one."""
    if epoll is None:
        epoll = HAVE_EPOLL
    return _EpollWatch() if epoll else _TaskWatch(nursery)
