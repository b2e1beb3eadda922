"""Sandbox fixtures: a controller on the real engine, and a session-end leak check."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import trio

from atomic import config
from atomic.sandbox import SandboxController

LABEL = "io.atomic.managed=1"


@pytest.fixture(scope="session", autouse=True)
def no_containers_left_behind():
    """After the whole sandbox suite, no container with our label may remain.

    Only this test process's containers (``io.atomic.pid``): others may share the engine.
    """
    yield
    import docker

    try:
        client = docker.from_env(timeout=30)
        left = client.containers.list(all=True, filters={"label": [LABEL, f"io.atomic.pid={os.getpid()}"]})
    except Exception as exc:  # noqa: BLE001 - no engine: the leak check itself fails
        pytest.fail(f"cannot check for leftover sandbox containers: {exc}")
    names = [c.name for c in left]
    for c in left:
        c.remove(force=True)
    client.close()
    assert not names, f"sandbox containers left behind: {names}"


@pytest.fixture
def sandbox_settings(tmp_settings: config.Settings) -> config.Settings:
    """Short limits so the suite stays fast: 2 s wall clock, small output and disk caps."""
    return tmp_settings.replace(
        timeout_s=2.0,
        warm_pool_size=0,
        output_limit_bytes=256 * 1024,
        disk_mb=32,
        default_memory_mb=128,
        cleanup_timeout_s=10.0,
    )


@contextlib.asynccontextmanager
async def running(settings: config.Settings) -> AsyncIterator[SandboxController]:
    """A controller whose service runs, available and with its warm pool filled."""
    ctl = SandboxController(settings)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(15):
            await nursery.start(ctl.run)
            while not ctl.status()["available"] or ctl.status()["warm"] < settings.warm_pool_size:
                await trio.sleep(0.05)
        yield ctl
        nursery.cancel_scope.cancel()


@pytest.fixture
async def controller(docker_client, sandbox_settings) -> AsyncIterator[SandboxController]:
    """A running controller without a warm pool: every run takes the cold path."""
    async with running(sandbox_settings) as ctl:
        yield ctl


@pytest.fixture
async def warm_controller(docker_client, sandbox_settings) -> AsyncIterator[SandboxController]:
    """A running controller with one warm sandbox, ready."""
    async with running(sandbox_settings.replace(warm_pool_size=1)) as ctl:
        yield ctl


@pytest.fixture(params=["cold", "warm"])
async def any_controller(request, docker_client, sandbox_settings) -> AsyncIterator[SandboxController]:
    """Both execution paths: a direct container run, and exec into a warm container."""
    warm = request.param == "warm"
    async with running(sandbox_settings.replace(warm_pool_size=int(warm))) as ctl:
        yield ctl
        hits = ctl.statistics().warm_hits
    if warm:
        assert hits >= 1, "the run did not take the warm path"


@pytest.fixture
def controller_with(docker_client, sandbox_settings):
    """``async with controller_with(batch_lanes=1) as ctl:`` a running controller with the
    sandbox settings, those changed."""

    def make(**changes: object) -> contextlib.AbstractAsyncContextManager[SandboxController]:
        return running(sandbox_settings.replace(**changes))

    return make
