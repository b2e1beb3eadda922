"""The systemd notify protocol, spoken by ``atomic serve`` when ``NOTIFY_SOCKET`` is set.

systemd (``Type=notify``) hands the service a datagram socket in ``NOTIFY_SOCKET``: a path,
or an abstract socket when it starts with ``@``. Each message is one datagram of
``KEY=VALUE`` lines (sd_notify(3)). We send ``READY=1`` once the HTTP socket is bound and
the agent has answered, ``STOPPING=1`` when shutdown begins, ``STATUS=`` for
``systemctl status``, ``RELOADING=1`` around a SIGHUP reload, and ``WATCHDOG=1`` while the
server is healthy (``WatchdogSec=``), so a wedged server is restarted.

Without ``NOTIFY_SOCKET`` every method is a no-op: the same code runs under a terminal,
a container or systemd. A failed send is logged and never raised: supervision is a
courtesy to the service manager, not a reason to stop serving.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, MutableMapping

import trio

log = logging.getLogger(__name__)

_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as an AF_UNIX address: '@name' is the abstract socket '\\0name'."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # systemd also knows vsock: addresses; we do not, so they count as unset.
    return None


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify messages; a no-op when ``address`` is None.

    Build one with :meth:`from_env`. Sends wait for the socket like any other write, so a
    caller on a shutdown path bounds them (``trio.move_on_after(..., shield=True)``).
    """

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
        pid: int | None = None,
    ) -> None:
        self.address = address
        self.pid = os.getpid() if pid is None else pid
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, unset: bool = False) -> Notifier:
        """The notifier systemd asked for in ``env`` (default: ``os.environ``).

        ``unset=True`` removes ``NOTIFY_SOCKET`` and ``WATCHDOG_*`` from ``env`` (which must
        then be mutable), so that child processes do not inherit them.
        """
        if env is None:
            env = os.environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a Unix socket address; not notifying systemd", raw)
        usec = _positive_int(env.get("WATCHDOG_USEC"))
        wpid = _positive_int(env.get("WATCHDOG_PID"))
        if unset:
            if not isinstance(env, MutableMapping):
                raise TypeError("unset=True needs a mutable env")
            for var in _ENV_VARS:
                env.pop(var, None)
        return cls(address, watchdog_usec=usec, watchdog_pid=wpid)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def __repr__(self) -> str:
        where = "disabled" if self.address is None else repr(self.address.replace("\0", "@", 1))
        return f"<Notifier {where} watchdog_interval={self.watchdog_interval()}>"

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None when off.

        None too when ``WATCHDOG_PID`` names another process: the watchdog is not ours.
        """
        if self.address is None or self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != self.pid:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    # --- messages -------------------------------------------------------------------

    async def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={status}")
        lines.append(f"MAINPID={self.pid}")
        return await self.notify(*lines)

    async def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return await self.notify(*lines)

    async def status(self, text: str) -> bool:
        return await self.notify(f"STATUS={text}")

    async def watchdog(self) -> bool:
        return await self.notify("WATCHDOG=1")

    async def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1``; send :meth:`ready` again once the reload is done."""
        lines = ["RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return await self.notify(*lines)

    async def notify(self, *lines: str) -> bool:
        """Send one datagram of ``lines``. True when sent; False when disabled or it failed."""
        if self.address is None:
            return False
        for line in lines:
            if "\n" in line:
                raise ValueError(f"sd_notify lines are single lines: {line!r}")
        data = "\n".join(lines).encode()
        try:
            with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as sock:
                await sock.sendto(data, self.address)
        except OSError as exc:
            # Logged once per outage, so a missing socket does not flood the journal
            # every watchdog interval.
            if not self._failed:
                log.warning("cannot notify systemd at %r: %s", self.address.replace("\0", "@", 1), exc)
            self._failed = True
            return False
        if self._failed:
            log.info("notifying systemd again")
            self._failed = False
        return True


def _positive_int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n > 0 else None


async def watchdog_loop(
    notifier: Notifier,
    healthy: Callable[[], bool],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping the watchdog every :meth:`Notifier.watchdog_interval` while ``healthy()``.

    Pings stop while ``healthy()`` is false: if it stays false for ``WatchdogSec``,
    systemd restarts us. A blocked event loop stops the pings too, which is the point.
    Returns at once when no watchdog is asked for.
    """
    interval = notifier.watchdog_interval()
    task_status.started()
    if interval is None:
        return
    was_healthy = True
    while True:
        ok = healthy()
        if ok:
            await notifier.watchdog()
        if ok != was_healthy:
            if ok:
                log.info("healthy again: watchdog pings resume")
            else:
                log.warning("unhealthy: watchdog pings paused (systemd restarts us if this lasts)")
            was_healthy = ok
        await trio.sleep(interval)
