"""The systemd notify protocol, received by a real datagram socket standing in for systemd."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from atomic.notify import Notifier, watchdog_loop


class Receiver:
    """A bound AF_UNIX datagram socket: what systemd listens on."""

    def __init__(self, sock: trio.socket.SocketType, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET would say

    async def receive(self, limit: float = 5) -> dict[str, str]:
        with trio.fail_after(limit):
            data = await self.sock.recv(4096)
        return dict(line.split("=", 1) for line in data.decode().split("\n"))


@pytest.fixture
async def path_receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    path = str(tmp_path / "notify.sock")
    with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(path)
        yield Receiver(sock, path)


@pytest.fixture
async def abstract_receiver() -> AsyncIterator[Receiver]:
    name = f"atomic-test-notify-{secrets.token_hex(6)}"
    with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind("\0" + name)
        yield Receiver(sock, "@" + name)


async def test_ready_status_stopping_on_a_path_socket(path_receiver: Receiver) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": path_receiver.env_value})
    assert n.enabled

    assert await n.ready(status="serving on http://127.0.0.1:8080")
    assert await path_receiver.receive() == {
        "READY": "1",
        "STATUS": "serving on http://127.0.0.1:8080",
        "MAINPID": str(os.getpid()),
    }
    assert await n.status("2 jobs running")
    assert await path_receiver.receive() == {"STATUS": "2 jobs running"}
    assert await n.watchdog()
    assert await path_receiver.receive() == {"WATCHDOG": "1"}
    assert await n.stopping()
    assert await path_receiver.receive() == {"STOPPING": "1"}


async def test_abstract_socket_and_reloading(abstract_receiver: Receiver) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": abstract_receiver.env_value})
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert await n.reloading()
    msg = await abstract_receiver.receive()
    t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert msg["RELOADING"] == "1"
    assert t0 <= int(msg["MONOTONIC_USEC"]) <= t1
    assert await n.ready()
    assert await abstract_receiver.receive() == {"READY": "1", "MAINPID": str(os.getpid())}


async def test_no_notify_socket_is_a_no_op() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.watchdog_interval() is None
    assert await n.ready(status="x") is False
    assert await n.stopping() is False
    assert await n.watchdog() is False
    assert "disabled" in repr(n)
    # The loop returns at once: nothing to ping.
    with trio.fail_after(1):
        await watchdog_loop(n, lambda: True)


async def test_send_errors_are_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert await n.ready() is False
    assert await n.watchdog() is False
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per message


def test_watchdog_interval_is_half_the_timeout_and_ours_only() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env).watchdog_interval() == 15.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval() == 15.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval() is None
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "nonsense"}).watchdog_interval() is None
    assert Notifier.from_env({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


def test_from_env_can_unset_the_variables_for_children() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "1000", "PATH": "/bin"}
    n = Notifier.from_env(env, unset=True)
    assert n.enabled and n.watchdog_interval() == 0.0005
    assert env == {"PATH": "/bin"}


def test_unsupported_addresses_disable_notifying() -> None:
    assert not Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


async def test_watchdog_pings_every_half_timeout_while_healthy(
    path_receiver: Receiver, autojump_clock: trio.testing.MockClock
) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": path_receiver.env_value, "WATCHDOG_USEC": "30000000"})
    healthy = True
    pings: list[float] = []

    async def collect() -> None:
        while True:
            msg = await path_receiver.receive(limit=float("inf"))  # virtual time
            assert msg == {"WATCHDOG": "1"}
            pings.append(trio.current_time())

    async def script() -> None:
        nonlocal healthy
        await trio.sleep(40)  # pings at 0, 15, 30
        healthy = False
        await trio.sleep(40)  # none at 45, 60, 75
        healthy = True
        await trio.sleep(20)  # 90 again

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        await nursery.start(watchdog_loop, n, lambda: healthy)
        await script()
        nursery.cancel_scope.cancel()
    assert [t - start for t in pings] == [0, 15, 30, 90]
