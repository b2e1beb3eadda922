"""Queue behaviour through the real server: capacity, priorities, shutdown."""

from __future__ import annotations

import msgspec
import trio

from atomic.store import JobStore

SLOW = "```python\nimport time\ntime.sleep(30)\n```\n"


async def test_burst_past_capacity_is_refused_and_nothing_accepted_is_lost(make_server):
    server = await make_server(max_queue_size=3, max_concurrent=1, rate=200.0)
    accepted, refused = [], []
    for i in range(10):
        r = await server.client.post("/api/generate", json={"prompt": f"p{i}", "execute": False})
        if r.status_code == 202:
            accepted.append(r.json()["id"])
        else:
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "queue_full"
            assert int(r.headers["Retry-After"]) >= 1
            refused.append(i)
    assert refused, "a burst of 10 into a queue of 3 must be refused in part"
    assert 3 <= len(accepted) <= 4  # 3 queued, plus perhaps one taken by the worker at once
    for job_id in accepted:
        doc = await server.wait_terminal(job_id)
        assert doc["state"] == "COMPLETE"
    status = (await server.client.get("/api/status")).json()
    assert status["queue"]["depth"] == 0


async def test_priorities_are_honoured_under_load(make_server):
    server = await make_server(text=SLOW, max_concurrent=1, timeout_s=60)
    blocker = (await server.client.post("/api/generate", json={"prompt": "block"})).json()
    with trio.fail_after(20):
        while (await server.client.get(f"/api/jobs/{blocker['id']}")).json()["state"] == "QUEUED":
            await trio.sleep(0.02)
    ids = {}
    for prio in ("low", "normal", "high", "low", "high"):
        r = await server.client.post("/api/generate", json={"prompt": prio, "priority": prio, "execute": False})
        assert r.status_code == 202
        ids.setdefault(prio, []).append(r.json()["id"])
    positions = {}
    for group in ids.values():
        for job_id in group:
            positions[job_id] = (await server.client.get(f"/api/jobs/{job_id}")).json()["queue_position"]
    order = sorted(positions, key=positions.get)
    assert order == ids["high"] + ids["normal"] + ids["low"]
    status = (await server.client.get("/api/status")).json()
    assert status["queue"]["by_priority"] == {"high": 2, "normal": 1, "low": 2}
    # Free the worker: the queued jobs then run in that order.
    await server.client.delete(f"/api/jobs/{blocker['id']}")
    started = {}
    for job_id in order:
        doc = await server.wait_terminal(job_id)
        assert doc["state"] == "COMPLETE"
        started[job_id] = doc["started_at"]
    assert sorted(order, key=started.get) == order


async def test_shutdown_refuses_new_work_and_requeues_running_jobs(make_server):
    server = await make_server(text=SLOW, timeout_s=60, shutdown_grace_s=0.5)
    doc = (await server.client.post("/api/generate", json={"prompt": "x"})).json()
    with trio.fail_after(20):
        while (await server.client.get(f"/api/jobs/{doc['id']}")).json()["state"] != "EXECUTING":
            await trio.sleep(0.05)
    server.rt.manager.shutting_down = True
    r = await server.client.post("/api/generate", json={"prompt": "late"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
    server.rt.shutdown.set()
    with trio.fail_after(20):
        while server.rt.store.statistics() and server.rt.store._state != "closed":
            await trio.sleep(0.05)
    # Read what the next start will find.
    store = JobStore(server.settings.db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        stored = await store.get(doc["id"])
        nursery.cancel_scope.cancel()
    assert stored is not None and stored.state == "QUEUED"
    assert msgspec.to_builtins(stored.attempts[-1]) == {"interrupted": True, "stage": "EXECUTING"}
