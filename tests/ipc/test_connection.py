"""The framed connection over a real socket pair: the synchronous write fast path, its
fallback when the socket is full, and closing that wakes a blocked reader."""

from __future__ import annotations

import pytest
import trio

from atomic.errors import ConnectionBroken, ConnectionClosed
from atomic.ipc.connection import Connection

MAX = 16 << 20


def pair() -> tuple[Connection, Connection]:
    a, b = trio.socket.socketpair()
    return Connection(trio.SocketStream(a), max_frame=MAX), Connection(trio.SocketStream(b), max_frame=MAX)


async def test_small_send_is_not_a_scheduling_point() -> None:
    a, b = pair()
    # No other task gets to run during an uncontended send that fits the socket buffer.
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        for i in range(50):
            await a.send({"type": "token", "id": 1, "text": f"t{i}"})
        assert not ran
    assert [(await b.receive())["text"] for _ in range(50)] == [f"t{i}" for i in range(50)]
    assert (a.frames_sent, b.frames_received) == (50, 50)


async def test_frame_bigger_than_the_socket_buffer_falls_back_to_waiting() -> None:
    a, b = pair()
    big = {"type": "done", "id": 1, "text": "x" * (4 << 20)}
    got: list[dict] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            for _ in range(3):
                got.append(await b.receive())

        nursery.start_soon(reader)
        # Three senders at once: the first writes part and waits, the others queue on the lock.
        for i in range(3):
            nursery.start_soon(a.send, {**big, "id": i})
    assert sorted(m["id"] for m in got) == [0, 1, 2]
    assert all(m["text"] == big["text"] for m in got)


async def test_close_nowait_wakes_a_blocked_reader() -> None:
    a, _b = pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            failed = trio.Event()

            async def reader() -> None:
                with pytest.raises(ConnectionClosed):
                    await a.receive()
                failed.set()

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            a.close_nowait()
            await failed.wait()
    assert a.closed
    with pytest.raises(ConnectionClosed):
        await a.send({"type": "ping", "id": 1})


async def test_peer_gone() -> None:
    a, b = pair()
    await b.aclose()
    assert await a.receive() is None
    with pytest.raises(ConnectionBroken):
        for _ in range(10):  # the first write may still land in the buffer
            await a.send({"type": "ping", "id": 1})
