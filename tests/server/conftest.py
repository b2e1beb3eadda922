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


@pytest.fixture
async def make_server(nursery, tmp_path, short_dir, docker_client):
    made: list[LiveServer] = []

    async def make(text: str | None = None, rate: float = 0.0, **overrides: Any) -> LiveServer:
        n = len(made)
        base = {
            "data_dir": str(tmp_path / f"data{n}"),
            "ipc_socket": f"{short_dir}/a{n}.sock",
            "http_port": 0,
            "agent": "external",
            "provider": "replay",
            "warm_pool_size": 0,
            "repair_attempts": 0,
            "timeout_s": 10,
            "shutdown_grace_s": 1,
        }
        base.update(overrides)
        settings = config.load(env={}, overrides=base)
        provider = ReplayProvider(text, rate) if text is not None else ReplayProvider(tokens_per_s=rate)
        await nursery.start(partial(serve_agent, settings, providers={"replay": provider}))
        rt = Runtime(settings=settings, metrics=Metrics())
        urls = await nursery.start(partial(serve, settings, handle_signals=False, runtime=rt))
        url = urls[0]
        client = httpx.AsyncClient(base_url=url, timeout=30)
        server = LiveServer(url, rt, settings, client)
        made.append(server)
        # The pool connects in the background; wait until it is healthy.
        with trio.fail_after(10):
            while not rt.agent.status().get("healthy"):
                await trio.sleep(0.02)
        return server

    yield make
    for s in made:
        await s.client.aclose()
        s.rt.shutdown.set()
