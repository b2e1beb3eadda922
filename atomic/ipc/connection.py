"""A framed IPC connection: a thin wrapper over a Trio stream.

One task at a time receives: whichever task holds the connection (the pool lends a
connection to one request, which reads its own replies; the agent has one reader per
connection). Any task may send, and sends are serialised by a lock. Trio's errors are
translated here, at the boundary that meets them: the peer broke it -> ConnectionBroken,
we closed it -> ConnectionClosed, it could not be opened -> ConnectFailed.

Over TCP the stream may be a :class:`trio.SSLStream` (``ATOMIC_IPC_TLS_*``): frames then go
through it, never straight to the socket, and only closing reaches for the socket under it.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import trio

from .. import _fast
from ..config import Settings
from ..errors import AgentRefused, ConnectFailed, ConnectionBroken, ConnectionClosed, RemoteProtocolError
from ..tls import client_context
from . import messages as m

codec = _fast.load("codec")

_RECEIVE_SIZE = 64 * 1024
# os.write on a socket fd is send(2) without flags; Windows sockets are not fds.
_FD_WRITES = os.name == "posix"


class Connection:
    """Sends and receives framed JSON messages over a :class:`trio.abc.Stream`."""

    def __init__(self, stream: trio.abc.Stream, *, max_frame: int) -> None:
        self.stream = stream
        self.max_frame = max_frame
        self._decoder = codec.FrameDecoder(max_frame)
        self._send_lock = trio.Lock()
        self._closed = False
        # The trio socket under a SocketStream (None for other streams): lets a send that
        # fits the socket buffer skip the scheduler, and lets the pool watch idle sockets.
        self.socket: trio.socket.SocketType | None = getattr(stream, "socket", None)
        self._fd_writes = _FD_WRITES and self.socket is not None
        # What close_nowait closes: the socket itself, or the one under a TLS stream.
        self._raw_socket = self.socket or getattr(getattr(stream, "transport_stream", None), "socket", None)
        self.frames_sent = 0
        self.frames_received = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Connection {state} sent={self.frames_sent} received={self.frames_received}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as messages."""
        return self._decoder.buffered

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message. LocalProtocolError (nothing sent) when it is too big.

        A checkpoint only when it has to wait (the socket is full or another send is
        under way) or the task is cancelled: sending is not a scheduling point, so a
        request and its reply cost no extra scheduler round trip. Callers that loop on
        sends alone must checkpoint themselves (the agent's providers do, once per token).
        """
        data = codec.encode_message(message, self.max_frame)
        await trio.lowlevel.checkpoint_if_cancelled()  # raises if cancelled; no yield
        lock = self._send_lock
        sent = 0
        if self._fd_writes and not lock.locked():
            # Uncontended: try the whole frame now, synchronously; no task can interleave.
            assert self.socket is not None
            fd = self.socket.fileno()
            if fd < 0 or self._closed:
                raise ConnectionClosed("the connection is closed")
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                raise ConnectionBroken("the peer closed the connection") from None
            except OSError as exc:
                raise ConnectionBroken(f"the connection failed: {exc}") from None
            if sent == len(data):
                self.frames_sent += 1
                return
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            # Cancelled before the first byte, the stream stays usable ...
            if not sent:
                await trio.lowlevel.checkpoint_if_cancelled()
            try:
                await self.stream.send_all(memoryview(data)[sent:] if sent else data)
            except trio.Cancelled:
                # ... but part-way, the peer may hold half a frame: this stream is done.
                self._closed = True
                await trio.aclose_forcefully(self.stream)
                raise
        except trio.BrokenResourceError:
            raise ConnectionBroken("the peer closed the connection") from None
        except trio.ClosedResourceError:
            raise ConnectionClosed("the connection is closed") from None
        finally:
            lock.release()
        self.frames_sent += 1

    async def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the peer closed cleanly between frames.

        RemoteProtocolError for a malformed or oversized frame; ConnectionBroken when the
        peer reset the connection or closed it mid-frame.
        """
        decoder = self._decoder
        while True:
            frame = decoder.next_frame()
            if frame is not codec.NEED_DATA:
                self.frames_received += 1
                return codec.loads(frame)
            if decoder.eof:
                return None
            data: bytes | bytearray
            try:
                if self.socket is not None:
                    # The socket itself: SocketStream.receive_some adds a context manager
                    # and a conflict check per call, and only one task reads here anyway.
                    data = await self.socket.recv(_RECEIVE_SIZE)
                else:
                    data = await self.stream.receive_some(_RECEIVE_SIZE)
            except trio.BrokenResourceError:
                raise ConnectionBroken("the peer reset the connection") from None
            except trio.ClosedResourceError:
                raise ConnectionClosed("the connection is closed") from None
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise ConnectionClosed("the connection is closed") from None
                raise ConnectionBroken(f"the connection failed: {exc}") from None
            decoder.receive_data(data)
            if not data:
                try:
                    frame = decoder.next_frame()
                except RemoteProtocolError:
                    raise ConnectionBroken("the peer closed the connection mid-frame") from None
                if frame is codec.NEED_DATA:
                    return None
                self.frames_received += 1
                return codec.loads(frame)

    def close_nowait(self) -> None:
        """Close a socket connection at once, without a checkpoint (idempotent).

        A task blocked receiving or sending on it wakes with ConnectionClosed (or, under
        TLS, ConnectionBroken). For streams without a socket this only marks the connection
        closed; ``aclose`` closes them.
        """
        self._closed = True
        if self._raw_socket is not None:
            self._raw_socket.close()

    async def aclose(self) -> None:
        """Close the stream (idempotent, quick: a socket close does not block)."""
        self._closed = True
        await self.stream.aclose()


def ipc_uses_tls(settings: Settings) -> bool:
    """Whether the server speaks TLS to a TCP agent: when a CA to check it against, or
    the agent's own certificate (one environment file for both sides), is configured."""
    return bool(settings.ipc_tcp) and (settings.ipc_tls_ca is not None or settings.ipc_tls_cert is not None)


async def open_connection(settings: Settings) -> Connection:
    """Connect to the agent: TCP when ``ipc_tcp`` is set (TLS too when :func:`ipc_uses_tls`),
    else the Unix socket.

    ConnectFailed when nothing answers; AgentRefused when the TLS handshake fails. The
    caller bounds the wait.
    """
    where = settings.ipc_tcp or settings.ipc_socket
    try:
        if settings.ipc_tcp:
            host, _, port = settings.ipc_tcp.rpartition(":")
            host = host.strip("[]")
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, int(port))
        else:
            stream = await trio.open_unix_socket(settings.ipc_socket)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to the agent at {where}: {exc.strerror or exc}") from None
    if ipc_uses_tls(settings):
        stream = await _start_tls(stream, settings, host, where)
    return Connection(stream, max_frame=settings.ipc_max_frame)


async def _start_tls(tcp: trio.abc.Stream, settings: Settings, host: str, where: str) -> trio.SSLStream[Any]:
    """The client's TLS handshake: the agent's certificate must chain to ``ipc_tls_ca``
    (else the system's CAs) and name ``host``."""
    tls = trio.SSLStream(tcp, client_context(settings.ipc_tls_ca), server_hostname=host)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(tcp)
        reason = str(exc.__cause__ or exc) or "the agent closed the connection"
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            hint = "its certificate is not signed by ATOMIC_IPC_TLS_CA, or not issued for this host"
        else:
            hint = "does the agent serve TLS (ATOMIC_IPC_TLS_CERT and ATOMIC_IPC_TLS_KEY set for it)?"
        raise AgentRefused(f"TLS with the agent at {where} failed: {reason} ({hint})") from None
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


async def handshake(conn: Connection, token: str | None) -> dict[str, Any]:
    """Send ``hello`` (with ``token``) and return the agent's. AgentRefused when the agent
    answers with an error (a missing or wrong token, TLS expected), ConnectionBroken when
    it just closes, RemoteProtocolError for anything else."""
    await conn.send(m.hello(token))
    msg = await conn.receive()
    if msg is None:
        raise ConnectionBroken("the agent closed the connection during the handshake")
    if msg.get("type") == m.ERROR:
        error = msg.get("error")
        why = error.get("message") if isinstance(error, dict) else None
        raise AgentRefused(f"the agent refused the connection: {why or 'no reason given'}")
    if msg.get("type") != m.HELLO:
        raise RemoteProtocolError(f"expected hello, got {msg.get('type')!r}")
    return msg
