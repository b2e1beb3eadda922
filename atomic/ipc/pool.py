"""The agent connection pool: the server's side of the IPC.

:class:`AgentPool` is a service (``await nursery.start(pool.run)``): it keeps up to
``ipc_pool_size`` connections to the agent; pings idle connections every
``ipc_health_interval_s``; and reconnects with exponential backoff and jitter when the
agent goes away. A connection serves one request at a time, and the request's own task
reads the replies while it holds the connection: no reader task hands frames over, so a
round trip costs no more task switches than a bare echo. Idle connections have no reader;
one task watches them all (:mod:`.idle`), so an agent that dies is noticed at once.

Bookkeeping is synchronous (httpcore's shape): ``_assign`` decides which waiter gets which
idle connection and ``_release``/``_discard`` decide a connection's fate; the I/O they
imply runs afterwards, in the task that asked.
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ..backoff import backoff
from ..config import Settings
from ..errors import (
    AgentUnavailable,
    AtomicError,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    PoolTimeout,
    RemoteProtocolError,
)
from . import messages as m
from .connection import Connection, handshake, open_connection
from .idle import IdleWatch, open_idle_watch

log = logging.getLogger(__name__)

# Frames the agent may send the pool; all but hello answer a request by its id.
_FROM_AGENT = frozenset({m.TOKEN, m.DONE, m.ERROR, m.PONG, m.HELLO})


@dataclass(frozen=True)
class PoolStatistics:
    size: int
    connected: int
    idle: int
    in_use: int
    waiting: int
    requests: int
    failures: int
    reconnects: int
    healthy: bool
    last_ping_rtt_ms: float | None


class _AgentConnection:
    """One pooled connection; ``in_use`` while lent (to a request, a ping or a check)."""

    __slots__ = ("alive", "closed_by_us", "conn", "in_use", "number")

    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.alive = True
        self.in_use = False
        self.closed_by_us = False

    def __repr__(self) -> str:
        state = "in use" if self.in_use else "idle" if self.alive else "dead"
        return f"<agent connection #{self.number} {state}>"

    def lost_error(self) -> AtomicError:
        if self.closed_by_us:
            return ConnectionClosed("the agent connection was closed by the pool")
        return ConnectionBroken("the agent closed the connection in the middle of a request")


class _Waiter:
    __slots__ = ("conn", "error", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.conn: _AgentConnection | None = None
        self.error: AtomicError | None = None


class AgentPool:
    """Connections to the agent; see the module docstring."""

    def __init__(self, settings: Settings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.size = settings.ipc_pool_size
        self._rng = rng or random.Random()
        self._conns: list[_AgentConnection] = []
        self._idle: collections.deque[_AgentConnection] = collections.deque()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._watch: IdleWatch[_AgentConnection] | None = None
        self._running = False
        self._closed = False
        self._down: AtomicError | None = None  # why the last connect failed, while none is up
        self._wakeup = trio.Event()  # pokes the maintainer
        self._healthy = False
        self._facts: dict[str, Any] = {}
        self._requests = 0
        self._failures = 0
        self._reconnects = 0
        self._owed = 0  # connections lost and not yet replaced
        self._last_rtt_ms: float | None = None

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "running" if self._running else "not running"
        return (
            f"<AgentPool {state} {'healthy' if s.healthy else 'unhealthy'} "
            f"connected={s.connected}/{s.size} idle={s.idle} in_use={s.in_use} "
            f"waiting={s.waiting} requests={s.requests} failures={s.failures}>"
        )

    # --- reporting (no I/O) --------------------------------------------------------------

    def statistics(self) -> PoolStatistics:
        in_use = sum(1 for c in self._conns if c.in_use)
        return PoolStatistics(
            size=self.size,
            connected=len(self._conns),
            idle=len(self._idle),
            in_use=in_use,
            waiting=len(self._waiters),
            requests=self._requests,
            failures=self._failures,
            reconnects=self._reconnects,
            healthy=self._healthy and bool(self._conns),
            last_ping_rtt_ms=self._last_rtt_ms,
        )

    def status(self) -> dict[str, Any]:
        """For /api/status: from the last hello/pong, without network I/O."""
        return {
            "healthy": self._healthy and bool(self._conns),
            "pool_size": self.size,
            "connected": len(self._conns),
            "providers": list(self._facts.get("providers", [])),
        }

    @property
    def agent_facts(self) -> dict[str, Any]:
        """The agent's last hello/pong (version, providers, default_provider, usage_totals)."""
        return dict(self._facts)

    # --- decisions (synchronous) ---------------------------------------------------------

    def _lend(self, conn: _AgentConnection) -> None:
        """``conn`` (just taken from the idle set) now belongs to one task, which reads it."""
        conn.in_use = True
        if self._watch is not None:
            self._watch.discard(conn)

    def _assign(self) -> None:
        """Hand idle connections to waiters in arrival order; fail waiters when hopeless."""
        while self._waiters and self._idle:
            waiter = self._waiters.popleft()
            conn = self._idle.popleft()
            self._lend(conn)
            waiter.conn = conn
            waiter.event.set()
        if self._waiters and (self._closed or (self._down is not None and not self._conns)):
            error: AtomicError = (
                AgentUnavailable("the agent pool is closed")
                if self._closed
                else AgentUnavailable(f"the agent is unavailable: {self._down}")
            )
            while self._waiters:
                waiter = self._waiters.popleft()
                waiter.error = error
                waiter.event.set()

    def _make_idle(self, conn: _AgentConnection) -> None:
        conn.in_use = False
        if self._waiters:
            self._idle.append(conn)
            self._assign()
            if conn.in_use:
                return
        else:
            self._idle.append(conn)
        if self._watch is not None and conn.conn.socket is not None:
            self._watch.add(conn, conn.conn.socket)

    def _add(self, conn: _AgentConnection) -> None:
        self._conns.append(conn)
        self._down = None
        self._healthy = True
        if self._owed:
            self._owed -= 1
            self._reconnects += 1
        self._make_idle(conn)

    def _release(self, conn: _AgentConnection, *, reusable: bool) -> None:
        # Bytes already read past the last reply would be a frame nobody asked for.
        if reusable and conn.alive and not self._closed and not conn.conn.closed and not conn.conn.buffered:
            self._make_idle(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: _AgentConnection, *, by_us: bool = True) -> None:
        """Forget ``conn`` and close its socket: a task blocked on it wakes with
        ConnectionClosed and raises ``conn.lost_error()``."""
        if not conn.alive:
            return
        conn.alive = False
        conn.closed_by_us = by_us
        conn.in_use = False
        if self._watch is not None:
            self._watch.discard(conn)
        conn.conn.close_nowait()
        if conn in self._conns:
            self._conns.remove(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if not self._closed:
            self._owed += 1
        if not self._conns:
            self._healthy = False
        self._wakeup.set()
        self._assign()

    def _connect_failed(self, exc: AtomicError) -> None:
        if not self._conns:
            self._down = exc
            self._healthy = False
        self._assign()

    def _backoff(self, failures: int) -> float:
        return backoff(failures, self.settings.ipc_reconnect_s, self.settings.ipc_reconnect_cap_s, self._rng)

    # --- the service ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the pool filled and checked until cancelled or closed. Starts at once."""
        if self._running or self._closed:
            raise RuntimeError("an AgentPool runs once")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._watch = open_idle_watch(nursery)
                self._running = True
                nursery.start_soon(self._maintain)
                nursery.start_soon(self._health)
                nursery.start_soon(self._watch_idle)
                task_status.started()
        finally:
            self._running = False
            self._closed = True
            for conn in list(self._conns):
                self._discard(conn)
            self._assign()
            if self._watch is not None:
                self._watch.close()

    async def _maintain(self) -> None:
        failures = 0
        while not self._closed:
            if len(self._conns) >= self.size:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                continue
            try:
                with trio.fail_after(self.settings.ipc_connect_timeout_s):
                    conn = await self._connect()
            except (AtomicError, trio.TooSlowError) as exc:
                if isinstance(exc, trio.TooSlowError):
                    exc = AgentUnavailable(
                        f"the agent did not answer within {self.settings.ipc_connect_timeout_s}s"
                    )
                failures += 1
                if failures == 1 or self._conns:
                    log.warning("cannot connect to the agent: %s", exc)
                self._connect_failed(exc)
                await trio.sleep(self._backoff(failures))
                continue
            if failures:
                log.info("connected to the agent again after %d failed attempts", failures)
            failures = 0
            if self._closed:
                conn.conn.close_nowait()
                return
            self._add(conn)

    async def _connect(self) -> _AgentConnection:
        """Open a connection and do the hello handshake (with the token, when configured)."""
        conn = await open_connection(self.settings)
        try:
            msg = await handshake(conn, self.settings.ipc_token)
        except BaseException:
            with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                await conn.aclose()
            raise
        self._facts = {k: v for k, v in msg.items() if k != "type"}
        return _AgentConnection(conn, next(self._numbers))

    async def _receive(self, conn: _AgentConnection) -> dict[str, Any]:
        """The next frame from the agent on a connection this task holds.

        Anything that ends the connection (end of stream, reset, a malformed or unexpected
        frame, the pool closing it) discards it and raises ``conn.lost_error()``.
        """
        try:
            msg = await conn.conn.receive()
            if msg is not None:
                kind = msg.get("type")
                if kind not in _FROM_AGENT or (kind != m.HELLO and msg.get("id") is None):
                    if kind == m.ERROR:
                        raise RemoteProtocolError(f"the agent reported {msg.get('error')}")
                    raise RemoteProtocolError(f"unexpected {kind!r} frame from the agent")
                return msg
        except RemoteProtocolError as exc:
            log.warning("dropping agent connection #%d: %s", conn.number, exc.message)
        except (ConnectionBroken, ConnectionClosed):
            pass
        self._discard(conn, by_us=False)  # no-op when the pool closed it first
        raise conn.lost_error()

    def _note_facts(self, msg: dict[str, Any]) -> None:
        facts = self._facts
        for key, value in msg.items():
            if key != "type" and key != "id":
                facts[key] = value

    async def _watch_idle(self) -> None:
        """Check idle connections whose socket turned readable: the agent went away (or
        sent a frame nobody asked for)."""
        assert self._watch is not None
        while True:
            for conn in await self._watch.wait():
                if conn not in self._idle or conn not in self._watch:
                    continue  # lent or discarded since
                self._idle.remove(conn)
                self._lend(conn)
                ok = False
                with trio.move_on_after(self.settings.cleanup_timeout_s):
                    try:
                        msg = await self._receive(conn)
                    except AtomicError:
                        continue  # discarded
                    if msg["type"] == m.HELLO:
                        self._note_facts(msg)
                    ok = True  # a late reply to a finished request: harmless
                self._release(conn, reusable=ok)

    async def _health(self) -> None:
        while True:
            await trio.sleep(self.settings.ipc_health_interval_s)
            for conn in list(self._idle):
                if conn not in self._idle:
                    continue
                # Decide: take it out of the idle set for the ping's duration.
                self._idle.remove(conn)
                self._lend(conn)
                ok = False
                try:
                    with trio.move_on_after(self.settings.ipc_connect_timeout_s):
                        await self._ping_on(conn)
                        ok = True
                except AtomicError as exc:
                    log.warning("agent ping failed on connection #%d: %s", conn.number, exc)
                finally:
                    self._release(conn, reusable=ok)
                if not ok:
                    self._healthy = False

    async def _ping_on(self, conn: _AgentConnection) -> float:
        rid = next(self._ids)
        start = trio.current_time()
        await conn.conn.send(m.ping(rid))
        while True:
            msg = await self._receive(conn)
            if msg["type"] == m.PONG and msg["id"] == rid:
                break
            if msg["type"] == m.HELLO:
                self._note_facts(msg)
        rtt_ms = (trio.current_time() - start) * 1000.0
        self._note_facts(msg)
        self._last_rtt_ms = rtt_ms
        self._healthy = True
        return rtt_ms

    # --- the API -------------------------------------------------------------------------

    async def _acquire(self) -> _AgentConnection:
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._running:
            raise AgentUnavailable("the agent pool is not running")
        if self._idle and not self._waiters:  # the usual case: an idle connection, no queue
            conn = self._idle.popleft()
            self._lend(conn)
            return conn
        waiter = _Waiter()
        self._waiters.append(waiter)
        self._assign()
        if waiter.conn is not None:
            return waiter.conn
        try:
            with trio.move_on_after(self.settings.ipc_acquire_timeout_s):
                await waiter.event.wait()
        except BaseException:
            if waiter.conn is not None:
                self._release(waiter.conn, reusable=True)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        if waiter.conn is not None:
            return waiter.conn
        if waiter.error is not None:
            raise waiter.error
        self._waiters.remove(waiter)
        raise PoolTimeout(
            f"no agent connection became free within {self.settings.ipc_acquire_timeout_s}s"
        )

    async def ping(self) -> float:
        """Round-trip one ping over a pooled connection; the time in milliseconds."""
        conn = await self._acquire()
        ok = False
        try:
            rtt = await self._ping_on(conn)
            ok = True
            return rtt
        finally:
            self._release(conn, reusable=ok)

    async def generate(
        self, request: dict[str, Any], on_token: Callable[[str], None] | None = None, *,
        trace: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Generate over a pooled connection; tokens go to ``on_token`` as they arrive.

        Returns the ``done`` payload (text, usage, provider, model, finish_reason, and
        model_ms: how long the agent waited on the provider, the model's own time). Raises
        the agent's error rebuilt (ProviderError family), ConnectionBroken when the agent
        is lost mid-request, AgentUnavailable when it cannot be reached, PoolTimeout when
        no connection frees up in time. If the caller is cancelled, the agent is told to
        stop, and the connection returns to the pool once the agent confirms. ``trace``
        (``{"traceparent": ...}``) goes in the frame: the agent's span joins that trace.
        """
        conn = await self._acquire()
        rid = next(self._ids)
        self._requests += 1
        terminal = False  # the agent is done with rid: the connection is clean
        try:
            try:
                await conn.conn.send(m.generate(rid, request, trace))
            except LocalProtocolError:
                terminal = True  # nothing was sent
                raise
            except AtomicError:
                if conn.alive:
                    self._discard(conn, by_us=False)
                raise conn.lost_error() from None
            while True:
                msg = await self._receive(conn)
                if msg.get("id") != rid:
                    if msg["type"] == m.HELLO:
                        self._note_facts(msg)
                    continue  # a late frame of an earlier request
                kind = msg["type"]
                if kind == m.TOKEN:
                    if on_token is not None:
                        on_token(msg.get("text", ""))
                elif kind == m.DONE:
                    terminal = True
                    del msg["type"], msg["id"]
                    return msg
                elif kind == m.ERROR:
                    terminal = True
                    raise m.error_from_wire(msg.get("error"))
        except Exception:
            self._failures += 1
            raise
        finally:
            if not terminal and conn.alive:
                terminal = await self._cancel_remote(conn, rid)
            self._release(conn, reusable=terminal)

    async def _cancel_remote(self, conn: _AgentConnection, rid: int) -> bool:
        """Tell the agent to stop ``rid`` and wait (bounded, shielded) for its last frame."""
        with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
            try:
                await conn.conn.send(m.cancel(rid))
                while True:
                    msg = await self._receive(conn)
                    if msg.get("id") == rid and msg["type"] in m.TERMINAL:
                        return True
            except AtomicError:
                return False
        return False

    async def aclose(self) -> None:
        """Close every connection and stop the service; waiting callers get AgentUnavailable."""
        self._closed = True
        for conn in list(self._conns):
            self._discard(conn)
        self._assign()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        await trio.lowlevel.checkpoint()
