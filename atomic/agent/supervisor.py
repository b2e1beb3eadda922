"""The agent supervisor: runs the agent as a child process and keeps it running.

``await nursery.start(supervisor.run)`` spawns ``python -m atomic agent`` with the
parent's settings in its ``ATOMIC_*`` environment, and reports started once the child
answers a ``hello`` on its socket (bounded by ``agent_start_timeout_s``). A child that
exits is restarted with capped exponential backoff. On cancellation the child gets
SIGTERM, then, after ``cleanup_timeout_s``, SIGKILL.
"""

from __future__ import annotations

import logging
import os
import pathlib
import random
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ..backoff import backoff
from ..config import FIELDS, Settings, env_name
from ..errors import AgentUnavailable, AtomicError
from ..ipc import messages as m
from ..ipc.connection import handshake, open_connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupervisorStatistics:
    pid: int | None
    restarts: int
    running: bool
    last_exit_code: int | None


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) plus every setting as its ATOMIC_* variable."""
    env = dict(os.environ if base is None else base)
    env.pop("ATOMIC_CONFIG", None)  # every value is explicit below
    for name in FIELDS:
        value: Any = getattr(settings, name)
        if value is None:
            env.pop(env_name(name), None)
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        env[env_name(name)] = str(value)
    # The child watches this pid and leaves when its server is gone, even by SIGKILL.
    # (Not PR_SET_PDEATHSIG: that follows the spawning *thread*, and trio spawns from a
    # worker thread that exits when idle.)
    env["ATOMIC_AGENT_PARENT_PID"] = str(os.getpid())
    # The child imports the same atomic package as we do, installed or not.
    root = str(pathlib.Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class AgentSupervisor:
    """Runs and restarts the agent child process; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        argv: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", "atomic", "agent"]
        self.env = settings_env(settings, env)
        self._rng = rng or random.Random()
        self._proc: trio.Process | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<AgentSupervisor pid={s.pid} {'running' if s.running else 'stopped'} "
            f"restarts={s.restarts} last_exit_code={s.last_exit_code}>"
        )

    def statistics(self) -> SupervisorStatistics:
        proc = self._proc
        running = proc is not None and proc.returncode is None
        return SupervisorStatistics(
            pid=proc.pid if running and proc is not None else None,
            restarts=self.restarts,
            running=running,
            last_exit_code=self.last_exit_code,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled. started() once the first child answers ``hello``."""
        started = False
        failures = 0
        while True:
            proc = await trio.lowlevel.open_process(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._proc = proc
            log.info("agent started (pid %d)", proc.pid)
            began = trio.current_time()
            try:
                ready = await self._wait_ready(proc)
                if ready:
                    if not started:
                        started = True
                        task_status.started()
                    await proc.wait()
                elif not started and proc.returncode is not None:
                    raise AgentUnavailable(f"the agent exited with code {proc.returncode} while starting")
                elif not started:
                    raise AgentUnavailable(
                        f"the agent did not answer within {self.settings.agent_start_timeout_s}s"
                    )
            finally:
                await self._stop(proc)
                self.last_exit_code = proc.returncode
            # A child that ran long enough resets the backoff.
            failures = 0 if trio.current_time() - began > self.settings.agent_stable_s else failures + 1
            delay = backoff(failures, self.settings.agent_restart_s, self.settings.agent_restart_cap_s, self._rng)
            log.warning("agent exited with code %s; restarting in %.2fs", proc.returncode, delay)
            await trio.sleep(delay)
            self.restarts += 1

    def send_signal(self, signum: int) -> bool:
        """Pass a signal (SIGHUP: reload provider keys) to the running child."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return False
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            return False
        return True

    async def _wait_ready(self, proc: trio.Process) -> bool:
        """True once the child answers hello; False if it exits or takes too long."""
        with trio.move_on_after(self.settings.agent_start_timeout_s):
            while proc.returncode is None:
                if await self._probe():
                    return True
                with trio.move_on_after(self.settings.agent_probe_s):
                    await proc.wait()
        return False

    async def _probe(self) -> bool:
        try:
            with trio.fail_after(self.settings.ipc_connect_timeout_s):
                conn = await open_connection(self.settings)
                try:
                    msg = await handshake(conn, self.settings.ipc_token)
                finally:
                    with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                        await conn.aclose()
        except (AtomicError, trio.TooSlowError):
            return False
        return msg is not None and msg.get("type") == m.HELLO

    async def _stop(self, proc: trio.Process) -> None:
        """SIGTERM, a bounded wait, then SIGKILL (shielded: runs during cancellation too)."""
        if proc.returncode is not None:
            return
        with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            await proc.wait()
        if proc.returncode is None:
            log.warning("agent (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                await proc.wait()


__all__ = ["AgentSupervisor", "SupervisorStatistics", "settings_env"]
