"""A real server in the test's own Trio run: the real app, pipeline, store, queue, sandbox
(Docker) and IPC pool, talking to a real agent server over a Unix socket. The agent's
provider is ``replay`` (a real provider of ours that streams a given text), so what a
test checks is the pipeline, never the model."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from atomic import config
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import serve_agent
from atomic.metrics import Metrics
from atomic.server.serve import serve
from atomic.server.state import Runtime

TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}


@dataclass
class LiveServer:
    url: str
    rt: Runtime
    settings: config.Settings
    client: httpx.AsyncClient
    provider: ReplayProvider  # the agent's model: what it answers, and what it was asked

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/stream"

    async def wait_terminal(self, job_id: str, limit: float = 60) -> dict[str, Any]:
        with trio.fail_after(limit):
            while True:
                r = await self.client.get(f"/api/jobs/{job_id}")
                assert r.status_code == 200, r.text
                doc = r.json()
                if doc["state"] in TERMINAL:
                    return doc
                await trio.sleep(0.05)


@pytest.fixture
def short_dir():
    # Unix socket paths must stay under 108 bytes; pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="atomic-t")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class ServerFactory:
    """Starts real servers in the test's Trio run; shuts them down at the end."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Any, short_dir: str, docker_host: str | None) -> None:
        self.nursery = nursery
        self.tmp_path = tmp_path
        self.short_dir = short_dir
        self.docker_host = docker_host
        self.made: list[LiveServer] = []

    async def __call__(self, text: str | list[str] | None = None, rate: float = 0.0, **overrides: Any) -> LiveServer:
        """A server whose model answers ``text`` (several texts: one per sample and round,
        see :class:`~atomic.agent.providers.replay.ReplayProvider`)."""
        n = len(self.made)
        base = {
            "data_dir": str(self.tmp_path / f"data{n}"),
            "ipc_socket": f"{self.short_dir}/a{n}.sock",
            "http_port": 0,
            "agent": "external",
            "provider": "replay",
            "warm_pool_size": 0,
            "repair_attempts": 0,
            "timeout_s": 10,
            "shutdown_grace_s": 1,
            "docker_host": self.docker_host,
        }
        base.update(overrides)
        settings = config.load(env={}, overrides=base)
        provider = ReplayProvider(text, rate) if text is not None else ReplayProvider(tokens_per_s=rate)
        await self.nursery.start(partial(serve_agent, settings, providers={"replay": provider}))
        rt = Runtime(settings=settings, metrics=Metrics())
        urls = await self.nursery.start(partial(serve, settings, handle_signals=False, runtime=rt))
        url = urls[0]
        client = httpx.AsyncClient(base_url=url, timeout=30)
        server = LiveServer(url, rt, settings, client, provider)
        self.made.append(server)
        # The pool connects in the background; wait until it is healthy.
        with trio.fail_after(10):
            while not rt.agent.status().get("healthy"):
                await trio.sleep(0.02)
        return server

    async def aclose(self) -> None:
        for s in self.made:
            await s.client.aclose()
            s.rt.shutdown.set()


@pytest.fixture
async def make_server(nursery, tmp_path, short_dir, docker_client):
    """A whole server: Docker runs the programs."""
    factory = ServerFactory(nursery, tmp_path, short_dir, None)
    yield factory
    await factory.aclose()


@pytest.fixture
async def make_server_without_docker(nursery, tmp_path, short_dir):
    """The same real server with a Docker URL that points nowhere: the sandbox is
    unavailable (degraded), everything else is the real code. For the contract's rules
    that need no program to run."""
    factory = ServerFactory(nursery, tmp_path, short_dir, f"unix://{short_dir}/no-docker.sock")
    yield factory
    await factory.aclose()
