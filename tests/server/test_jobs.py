"""Jobs through the real server: HTTP and WebSocket as a user drives them."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

SQUARES = "\n".join(str(n * n) for n in range(1, 11)) + "\n"

FAILING = "```python\nimport sys\nprint('about to fail')\nsys.exit(3)\n```\n"
SLOW = "```python\nimport time\nprint('start', flush=True)\ntime.sleep(30)\n```\n"


async def test_generate_runs_the_program_and_exports_a_zip(make_server):
    server = await make_server()
    r = await server.client.post("/api/generate", json={"prompt": "first 10 square numbers"})
    assert r.status_code == 202, r.text
    doc = r.json()
    assert r.headers["Location"] == f"/api/jobs/{doc['id']}"
    assert doc["state"] == "QUEUED" and doc["request"]["prompt"] == "first 10 square numbers"
    done = await server.wait_terminal(doc["id"])
    assert done["state"] == "COMPLETE", done["error"]
    assert [s["name"] for s in done["stages"]] == ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]
    assert all(s["duration_ms"] is not None and s["duration_ms"] >= 0 for s in done["stages"])
    ex = done["execution"]
    assert ex["exit_code"] == 0 and ex["termination"] == "exited" and ex["stdout"] == SQUARES
    assert ex["duration_ms"] > 0 and ex["truncated"] is False
    assert done["usage"]["provider"] == "replay" and done["usage"]["completion_tokens"] > 0
    [f] = done["files"]
    assert f["path"] == "main.py"
    [art] = done["artifacts"]
    assert art["format"] == "zip"
    z = await server.client.get(art["url"])
    assert z.status_code == 200
    assert "attachment" in z.headers["content-disposition"]
    assert hashlib.sha256(z.content).hexdigest() == art["sha256"] and len(z.content) == art["size"]
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        members = {name.split("/")[-1]: zf.read(name) for name in zf.namelist() if not name.endswith("/")}
    assert hashlib.sha256(members["main.py"]).hexdigest() == f["sha256"]


async def test_wait_true_answers_with_the_finished_document(make_server):
    server = await make_server()
    r = await server.client.post("/api/generate?wait=true", json={"prompt": "squares", "export": ["zip", "tar", "git"]})
    assert r.status_code == 200
    doc = r.json()
    assert doc["state"] == "COMPLETE"
    assert sorted(a["format"] for a in doc["artifacts"]) == ["git", "tar", "zip"]
    for fmt in ("tar", "git"):
        a = await server.client.get(f"/api/jobs/{doc['id']}/artifact", params={"format": fmt})
        assert a.status_code == 200 and a.content[:2] == b"\x1f\x8b"


async def test_the_generating_stage_says_how_long_the_model_took(make_server):
    # Seven words at 50 tokens/s: the replay provider (the model here) takes about 140 ms.
    server = await make_server("```python\nprint(1)\n```\n one two three four", rate=50)
    r = await server.client.post("/api/generate", json={"prompt": "x", "execute": False, "wait": True})
    doc = r.json()
    assert doc["state"] == "COMPLETE", doc["error"]
    [gen] = [s for s in doc["stages"] if s["name"] == "GENERATING"]
    assert 100 <= gen["model_ms"] <= gen["duration_ms"], gen
    assert all("model_ms" not in s for s in doc["stages"] if s["name"] != "GENERATING")


async def test_execute_false_skips_the_sandbox(make_server):
    server = await make_server()
    r = await server.client.post("/api/generate", json={"prompt": "x", "execute": False, "wait": True})
    doc = r.json()
    assert doc["state"] == "COMPLETE" and doc["execution"] is None
    assert "EXECUTING" not in [s["name"] for s in doc["stages"]]


async def test_a_failing_program_is_repaired_then_fails_with_its_record(make_server):
    server = await make_server(text=FAILING, repair_attempts=1)
    doc = (await server.client.post("/api/generate", json={"prompt": "x", "wait": True})).json()
    assert doc["state"] == "FAILED"
    assert doc["error"]["code"] == "program_failed" and doc["error"]["stage"] == "EXECUTING"
    assert [a["attempt"] for a in doc["attempts"]] == [1, 2]
    assert all(a["execution"]["exit_code"] == 3 for a in doc["attempts"])
    assert doc["execution"]["stdout"] == "about to fail\n"
    assert doc["artifacts"], "a failed program is still exported for inspection"


async def test_websocket_streams_every_event_in_order(make_server):
    server = await make_server()
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"prompt": "squares"}))
        events = []
        with trio.fail_after(60):
            while True:
                try:
                    events.append(json.loads(await ws.get_message()))
                except ConnectionClosed as exc:
                    assert exc.reason.code == 1000
                    break
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    job_id = events[0]["job"]["id"]
    assert all(e["job_id"] == job_id for e in events)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "done"
    states = [e["state"] for e in events if e["type"] == "state"]
    assert states == ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING", "COMPLETE"]
    first = {k: kinds.index(k) for k in ("token", "file", "output")}
    assert kinds.index("state") < first["token"] < first["file"] < first["output"] < kinds.index("done")
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert "print(n * n)" in text
    out = "".join(e["data"] for e in events if e["type"] == "output" and e["stream"] == "stdout")
    assert out == SQUARES
    assert events[-1]["job"]["state"] == "COMPLETE"


async def test_websocket_follow_a_finished_job_yields_done_at_once(make_server):
    server = await make_server()
    doc = (await server.client.post("/api/generate", json={"prompt": "x", "wait": True, "execute": False})).json()
    async with open_websocket_url(server.ws_url + f"?job_id={doc['id']}") as ws:
        with trio.fail_after(5):
            msg = json.loads(await ws.get_message())
    assert msg["type"] == "done" and msg["seq"] == 1 and msg["job"]["id"] == doc["id"]


async def test_websocket_bad_first_message_is_an_error_then_1008(make_server):
    server = await make_server()
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"prompt": ""}))
        with trio.fail_after(5):
            msg = json.loads(await ws.get_message())
            assert msg["type"] == "error" and msg["error"]["code"] == "validation_error"
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason.code == 1008


async def test_cancel_a_running_job_kills_its_sandbox(make_server, docker_client):
    server = await make_server(text=SLOW, timeout_s=60)
    doc = (await server.client.post("/api/generate", json={"prompt": "x"})).json()
    with trio.fail_after(30):
        while (await server.client.get(f"/api/jobs/{doc['id']}")).json()["state"] != "EXECUTING":
            await trio.sleep(0.05)
    await trio.sleep(0.5)
    t0 = trio.current_time()
    r = await server.client.delete(f"/api/jobs/{doc['id']}")
    assert r.status_code == 200
    assert r.json()["state"] == "CANCELLED"
    assert trio.current_time() - t0 < 5
    again = await server.client.delete(f"/api/jobs/{doc['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    leftover = docker_client.api.containers(all=True, filters={"label": f"io.atomic.job={doc['id']}"})
    assert leftover == []


async def test_cancel_a_queued_job_leaves_the_queue(make_server):
    server = await make_server(text=SLOW, max_concurrent=1, timeout_s=60)
    first = (await server.client.post("/api/generate", json={"prompt": "a"})).json()
    second = (await server.client.post("/api/generate", json={"prompt": "b"})).json()
    got = (await server.client.get(f"/api/jobs/{second['id']}")).json()
    assert got["state"] == "QUEUED" and got["queue_position"] == 0
    r = await server.client.delete(f"/api/jobs/{second['id']}")
    assert r.json()["state"] == "CANCELLED"
    assert server.rt.queue.statistics().depth == 0
    await server.client.delete(f"/api/jobs/{first['id']}")


WRITER = (
    "```python\n"
    "import os\n"
    "os.makedirs('results', exist_ok=True)\n"
    "open('results/table.csv', 'w').write('n,square\\n3,9\\n')\n"
    "print('wrote')\n"
    "```\n"
)


async def test_files_the_program_writes_are_collected_into_the_artifacts(make_server):
    server = await make_server(text=WRITER)
    doc = (await server.client.post("/api/generate", json={"prompt": "x", "collect": True, "wait": True})).json()
    assert doc["state"] == "COMPLETE", doc["error"]
    assert [o["path"] for o in doc["outputs"]] == ["output/results/table.csv"]
    z = await server.client.get(doc["artifacts"][0]["url"])
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = {n.split("/", 1)[1]: n for n in zf.namelist() if not n.endswith("/")}
        assert zf.read(names["output/results/table.csv"]) == b"n,square\n3,9\n"
        assert "main.py" in names


import pytest  # noqa: E402

from atomic.contract import JobSpec, StateEvent  # noqa: E402
from atomic.errors import JobFinished  # noqa: E402
from atomic.pipeline.job import EventBuffer  # noqa: E402


@pytest.mark.parametrize("state", ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"])
async def test_cancel_in_every_running_state(make_server, docker_client, state):
    """Cancel the moment the job enters ``state``: it ends CANCELLED, in that stage, fast."""
    server = await make_server(text=SLOW if state == "EXECUTING" else None, rate=20.0, timeout_s=60)
    manager = server.rt.manager
    buf = EventBuffer()
    job = await manager.submit(JobSpec(prompt="x"), watcher=buf)
    with trio.fail_after(30):
        while True:
            events = await buf.get_batch()
            assert events, "the job ended before reaching " + state
            if any(isinstance(e, StateEvent) and e.state == state for e in events):
                break
    t0 = trio.current_time()
    try:
        doc = await manager.cancel(job.id)
    except JobFinished:
        # EXPORTING is the last stage: the job may finish before the cancel lands, and
        # then the answer is 409, never a COMPLETE document passed off as cancelled.
        assert state == "EXPORTING"
        assert (await server.rt.store.get(job.id)).state == "COMPLETE"
        return
    took = trio.current_time() - t0
    assert doc.state == "CANCELLED"
    # Cancellation takes effect at the job's next checkpoint: in that stage, or (when the
    # stage was finishing its store write) the next one.
    order = ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]
    assert doc.error is not None
    assert doc.error.code == "cancelled" and doc.error.message == "the job was cancelled"
    assert doc.error.stage in order[order.index(state):order.index(state) + 2]
    assert took < 2.0, took
    stored = await server.rt.store.get(job.id)
    assert stored is not None and stored.state == "CANCELLED"
    # A cancelled run's container is gone when cancel returns; one that had already
    # finished (EXPORTING) is removed in the background, shortly.
    with trio.fail_after(5 if state != "EXECUTING" else 0.01):
        while docker_client.api.containers(all=True, filters={"label": f"io.atomic.job={job.id}"}):
            await trio.sleep(0.1)
