"""The supervisor with a real agent child process, and the pool healing around it."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import trio

from atomic.agent.supervisor import AgentSupervisor, settings_env
from atomic.errors import AgentUnavailable, ConnectionBroken
from atomic.ipc.pool import AgentPool

CHILD = [sys.executable, "-c",
         "from atomic import config; from atomic.agent.server import main; raise SystemExit(main(config.load()))"]
REQUEST = {"messages": [{"role": "user", "content": "squares"}], "provider": "replay"}


async def wait_until(predicate, timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def test_settings_env_carries_every_setting(ipc_settings) -> None:
    env = settings_env(ipc_settings.replace(fallback=("a", "b"), model=None), {"ATOMIC_MODEL": "x", "HOME": "/h"})
    assert env["ATOMIC_IPC_SOCKET"] == ipc_settings.ipc_socket
    assert env["ATOMIC_FALLBACK"] == "a,b"
    assert "ATOMIC_MODEL" not in env
    assert env["HOME"] == "/h"
    from atomic import config

    assert config.load(env=env) == ipc_settings.replace(fallback=("a", "b"), model=None)


@pytest.mark.slow
async def test_agent_killed_mid_stream_is_restarted_and_pool_heals(ipc_settings) -> None:
    words = " ".join(f"w{i}" for i in range(400))
    env = {**os.environ, "ATOMIC_REPLAY_TEXT": words, "ATOMIC_REPLAY_TOKENS_PER_S": "100"}
    settings = ipc_settings.replace(agent_start_timeout_s=30.0)
    supervisor = AgentSupervisor(settings, CHILD, env=env)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            first = supervisor.statistics()
            assert first.running and first.pid and first.restarts == 0
            pool = AgentPool(settings)
            await nursery.start(pool.run)
            await wait_until(lambda: pool.statistics().connected == settings.ipc_pool_size)

            tokens: list[str] = []

            def on_token(text: str) -> None:
                tokens.append(text)
                if len(tokens) == 5:
                    os.kill(first.pid, signal.SIGKILL)

            with pytest.raises(ConnectionBroken):
                await pool.generate(REQUEST, on_token)
            assert 5 <= len(tokens) < 400

            await wait_until(lambda: supervisor.statistics().restarts == 1 and supervisor.statistics().running)
            s = supervisor.statistics()
            assert s.pid != first.pid and s.last_exit_code == -signal.SIGKILL
            await wait_until(lambda: pool.statistics().connected == settings.ipc_pool_size)
            done = await pool.generate({**REQUEST, "max_tokens": 3})
            assert done["text"] == "w0 w1 w2 "
            stats = pool.statistics()
            assert stats.reconnects == settings.ipc_pool_size and stats.healthy
            assert "replay" in [p["name"] for p in pool.status()["providers"]]
            await pool.aclose()
            nursery.cancel_scope.cancel()
    # Cancellation stopped the child with SIGTERM, and main() exited cleanly.
    end = supervisor.statistics()
    assert (end.running, end.last_exit_code, end.restarts) == (False, 0, 1)
    assert not os.path.exists(settings.ipc_socket)


@pytest.mark.slow
async def test_child_that_cannot_start_fails_the_service(ipc_settings) -> None:
    supervisor = AgentSupervisor(ipc_settings.replace(agent_start_timeout_s=10.0),
                                 [sys.executable, "-c", "raise SystemExit(3)"])
    with trio.fail_after(20):
        with pytest.raises(AgentUnavailable, match="exited with code 3"):
            await supervisor.run()
    assert supervisor.statistics().last_exit_code == 3


@pytest.mark.slow
async def test_stubborn_child_is_killed(ipc_settings) -> None:
    """A child that ignores SIGTERM gets SIGKILL after cleanup_timeout_s."""
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "from atomic import config\n"
        "from atomic.agent.server import main\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "import trio\n"
        "from atomic.agent.server import serve_agent\n"
        "async def run():\n"
        "    await serve_agent(config.load())\n"
        "trio.run(run)\n"
    )
    settings = ipc_settings.replace(cleanup_timeout_s=0.5)
    supervisor = AgentSupervisor(settings, [sys.executable, "-c", code])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            start = trio.current_time()
            nursery.cancel_scope.cancel()
    assert supervisor.statistics().last_exit_code == -signal.SIGKILL
    assert trio.current_time() - start < 5
