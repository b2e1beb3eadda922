"""Rate limits on a live server: 429 ``rate_limited`` with an honest ``Retry-After``, per
API key or per address, ``/health`` exempt, counted in the metrics, reloaded by SIGHUP."""

from __future__ import annotations

import os
import signal
from functools import partial

import httpx
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from atomic import config
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import serve_agent
from atomic.metrics import Metrics
from atomic.server.serve import serve
from atomic.server.state import Runtime


async def test_past_the_burst_429_with_an_honest_retry_after(make_server_without_docker):
    server = await make_server_without_docker(rate_limit="2/s", rate_burst=2)
    c = server.client
    assert [(await c.get("/api/status")).status_code for _ in range(2)] == [200, 200]
    r = await c.get("/api/jobs")
    assert r.status_code == 429
    assert r.json() == {"error": {"code": "rate_limited",
                                  "message": "too many requests: at most 2/s; retry after 1 s"}}
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-request-id"]  # the contract's headers on this answer too
    # /health is never limited, however often.
    assert {(await c.get("/health")).status_code for _ in range(20)} == {200}
    # Waiting what Retry-After said is enough.
    await trio.sleep(int(r.headers["retry-after"]))
    assert (await c.get("/api/jobs")).status_code == 200


async def test_a_slow_rate_says_so_in_retry_after(make_server_without_docker):
    server = await make_server_without_docker(rate_limit="6/min")  # one per 10 s, burst 1
    c = server.client
    assert (await c.get("/api/status")).status_code == 200
    r = await c.post("/api/generate", json={"prompt": "p"})  # a body, refused before it is read
    assert r.status_code == 429 and r.headers["retry-after"] == "10"
    # The refused body was drained: the kept-alive connection serves the next request.
    assert (await c.get("/health")).status_code == 200


async def test_each_api_key_has_its_own_bucket(make_server_without_docker):
    server = await make_server_without_docker(rate_limit="1/min", api_keys="k1,k2")

    def get(key: str | None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return server.client.get("/api/status", headers=headers)

    assert (await get("k1")).status_code == 200
    assert (await get("k1")).status_code == 429
    assert (await get("k2")).status_code == 200  # another key, its own budget
    # Without a valid key the request is limited by address (then refused for the key).
    assert (await get(None)).status_code == 401
    assert (await get("wrong")).status_code == 429
    # The same key on a WebSocket's ?token= counts against that key.
    ws = server.url.replace("http://", "ws://") + "/ws/stream?token=k2"
    try:
        async with open_websocket_url(ws):
            raise AssertionError("the handshake should have been refused")
    except ConnectionRejected as exc:
        assert exc.status_code == 429
        assert dict(exc.headers)[b"retry-after"] == b"60"


async def test_preflights_and_the_web_page_are_not_limited(make_server_without_docker):
    server = await make_server_without_docker(rate_limit="1/min")
    c = server.client
    assert (await c.get("/api/languages")).status_code == 200
    assert (await c.get("/api/languages")).status_code == 429
    assert (await c.get("/")).status_code == 200
    r = await c.options("/api/generate", headers={"Origin": "https://x.test",
                                                  "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200


async def test_counters_in_both_metrics_views(make_server_without_docker):
    server = await make_server_without_docker(rate_limit="1/min", rate_burst=3)
    c = server.client
    codes = [(await c.get("/openapi.json")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    stats = server.rt.limiter.statistics()
    assert (stats.allowed, stats.limited) == (3, 2)
    server.rt.limiter.reconfigure(1000.0, 1000)  # room for the reads below
    doc = (await c.get("/api/metrics")).json()
    assert doc["rate_limit"]["limited"] == 2 and doc["rate_limit"]["allowed"] == 4
    assert doc["requests"]["by_route"]["GET rate_limited 429"] == 2
    text = (await c.get("/metrics")).text
    assert "atomic_rate_limit_limited_total 2.0" in text
    assert "atomic_rate_limit_allowed_total 5.0" in text


async def test_no_limit_by_default(make_server_without_docker):
    server = await make_server_without_docker()
    assert server.rt.limiter is None
    assert {(await server.client.get("/api/status")).status_code for _ in range(50)} == {200}
    assert (await server.client.get("/api/metrics")).json()["rate_limit"] is None


async def test_sighup_turns_the_limit_on_changes_it_and_off(nursery, tmp_path, short_dir):
    base = {"data_dir": str(tmp_path / "data"), "ipc_socket": f"{short_dir}/a.sock", "http_port": 0,
            "agent": "external", "provider": "replay", "warm_pool_size": 0,
            "docker_host": f"unix://{short_dir}/no-docker.sock"}
    current = {"rate_limit": None}

    def reload() -> config.Settings:
        return config.load(env={}, overrides={**base, **current})

    settings = reload()
    await nursery.start(partial(serve_agent, settings, providers={"replay": ReplayProvider("x")}))
    rt = Runtime(settings=settings, metrics=Metrics())
    urls = await nursery.start(partial(serve, settings, handle_signals=False, runtime=rt, reload=reload))
    async with httpx.AsyncClient(base_url=urls[0]) as c:

        async def hup_until(check) -> None:
            os.kill(os.getpid(), signal.SIGHUP)
            with trio.fail_after(10):
                while not check():
                    await trio.sleep(0.01)

        assert {(await c.get("/api/status")).status_code for _ in range(5)} == {200}
        current["rate_limit"] = "1/min"
        await hup_until(lambda: rt.limiter is not None)
        assert [(await c.get("/api/status")).status_code for _ in range(2)] == [200, 429]
        current["rate_limit"], current["rate_burst"] = "1/min", 3
        await hup_until(lambda: rt.limiter.statistics().burst == 3)
        assert [(await c.get("/api/status")).status_code for _ in range(3)] == [200, 200, 429]
        current["rate_limit"] = None
        await hup_until(lambda: rt.limiter is None)
        assert (await c.get("/api/status")).status_code == 200
    rt.shutdown.set()


async def test_atomic_generate_says_why_the_stream_was_refused(make_server_without_docker, capsys):
    import argparse

    from atomic.client import generate

    server = await make_server_without_docker(rate_limit="1/min")
    assert (await server.client.get("/api/status")).status_code == 200
    args = argparse.Namespace(url=server.url, api_key=None, ca=None, prompt="p", language="python",
                              priority="normal", provider=None, model=None, no_execute=True, export="zip",
                              out=".", quiet=True)
    assert await trio.to_thread.run_sync(generate, args) == 1
    assert capsys.readouterr().err.strip() == (
        "atomic: the server refused the stream: HTTP 429 rate_limited: too many requests: at most 1/min; "
        "retry after 60 s")
