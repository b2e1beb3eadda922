"""WebSocket behaviour under pressure: slow readers, cancel, shutdown."""

from __future__ import annotations

import json

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

LONG = "```python\n" + "".join(f"print({i})\n" for i in range(400)) + "```\n"


async def collect(ws, limit=60):
    events = []
    with trio.fail_after(limit):
        while True:
            try:
                events.append(json.loads(await ws.get_message()))
            except ConnectionClosed as exc:
                return events, exc.reason.code


async def test_a_slow_reader_never_slows_the_job_and_misses_no_state(make_server):
    server = await make_server(text=LONG)
    async with open_websocket_url(server.ws_url, message_queue_size=1) as ws:
        await ws.send_message(json.dumps({"prompt": "long", "execute": False}))
        first = json.loads(await ws.get_message())
        job_id = first["job"]["id"]
        # Do not read while the job runs to its end.
        doc = await server.wait_terminal(job_id)
        assert doc["state"] == "COMPLETE"
        events, code = await collect(ws)
    assert code == 1000
    events = [first, *events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    states = [e["state"] for e in events if e["type"] == "state"]
    assert states == ["PARSING", "GENERATING", "PACKAGING", "EXPORTING", "COMPLETE"]
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(e["text"] for e in tokens) == LONG
    assert len(tokens) < len(LONG.split())  # coalesced while the reader slept
    assert events[-1]["type"] == "done"


async def test_websocket_cancel_message(make_server):
    server = await make_server(rate=5.0)
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"prompt": "x"}))
        with trio.fail_after(30):
            while json.loads(await ws.get_message()).get("type") != "token":
                pass
        await ws.send_message(json.dumps({"type": "cancel"}))
        events, code = await collect(ws)
    assert code == 1000
    assert events[-1]["type"] == "done" and events[-1]["job"]["state"] == "CANCELLED"
    assert events[-1]["job"]["error"]["stage"] == "GENERATING"


async def test_shutdown_closes_websockets_with_1001(make_server):
    server = await make_server(rate=2.0, shutdown_grace_s=0.2)
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"prompt": "x"}))
        await ws.get_message()
        server.rt.shutdown.set()
        _events, code = await collect(ws, limit=20)
    assert code == 1001


async def test_following_a_running_job_starts_with_its_state(make_server):
    server = await make_server(rate=20.0)
    doc = (await server.client.post("/api/generate", json={"prompt": "x", "execute": False})).json()
    with trio.fail_after(20):
        while (await server.client.get(f"/api/jobs/{doc['id']}")).json()["state"] != "GENERATING":
            await trio.sleep(0.02)
    async with open_websocket_url(server.ws_url + f"?job_id={doc['id']}") as ws:
        events, code = await collect(ws)
    assert code == 1000
    assert events[0]["type"] == "state" and events[0]["state"] == "GENERATING" and events[0]["seq"] == 1
    assert [e["state"] for e in events if e["type"] == "state"][1:] == ["PACKAGING", "EXPORTING", "COMPLETE"]
    assert events[-1]["type"] == "done" and events[-1]["job"]["state"] == "COMPLETE"
