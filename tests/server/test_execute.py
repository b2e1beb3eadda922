"""POST /api/execute and /api/execute/batch through the real server and Docker."""

from __future__ import annotations

import trio


async def test_execute_runs_code_with_stdin(make_server):
    server = await make_server()
    body = {
        "files": [{"path": "main.py", "content": "import sys\nprint(sys.stdin.read().upper())"}],
        "stdin": "hello",
    }
    r = await server.client.post("/api/execute", json=body)
    assert r.status_code == 200, r.text
    res = r.json()
    assert set(res) >= {"exit_code", "stdout", "stderr", "duration_ms", "termination", "truncated"}
    assert res["stdout"] == "HELLO\n" and res["exit_code"] == 0 and res["termination"] == "exited"


async def test_execute_command_entrypoint_and_limits(make_server):
    server = await make_server()
    files = [{"path": "pkg/tool.sh", "content": "echo from-shell; exit 4"}]
    r = await server.client.post("/api/execute", json={"language": "shell", "files": files, "entrypoint": "pkg/tool.sh"})
    assert r.json()["stdout"] == "from-shell\n" and r.json()["exit_code"] == 4
    r = await server.client.post("/api/execute", json={
        "files": [{"path": "main.py", "content": "while True: pass"}],
        "command": ["python3", "main.py"], "limits": {"timeout_s": 1}})
    assert r.json()["termination"] == "timeout"


async def test_execute_refuses_paths_that_escape(make_server):
    server = await make_server()
    for path in ("../x.py", "/etc/passwd", "a/../../b.py", ""):
        r = await server.client.post("/api/execute", json={"files": [{"path": path, "content": "x"}]})
        assert r.status_code == 422, path
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["message"].startswith("files[0].path:")


async def test_batch_answers_in_order(make_server):
    server = await make_server(max_concurrent=3)
    runs = [{"files": [{"path": "main.py", "content": f"import time; time.sleep({0.3 * (3 - i)}); print({i})"}]}
            for i in range(4)]
    r = await server.client.post("/api/execute/batch", json={"runs": runs})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["stdout"] for x in results] == ["0\n", "1\n", "2\n", "3\n"]
    bad = await server.client.post("/api/execute/batch", json={"runs": [*runs[:1], {"files": "nope"}]})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("runs[1].files")


async def test_execute_goes_through_the_queue(make_server):
    server = await make_server(max_concurrent=1)
    slow = {"files": [{"path": "main.py", "content": "import time; time.sleep(1.5)"}]}
    quick = {"files": [{"path": "main.py", "content": "print('q')"}]}
    results = {}

    async def call(name, body):
        results[name] = (await server.client.post("/api/execute", json=body)).json()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "slow", slow)
        await trio.sleep(0.3)
        status = (await server.client.get("/api/status")).json()
        assert status["workers"]["busy"] == 1
        nursery.start_soon(call, "quick", quick)
        await trio.sleep(0.3)
        assert (await server.client.get("/api/status")).json()["queue"]["depth"] == 1
    assert results["quick"]["stdout"] == "q\n" and results["slow"]["exit_code"] == 0
