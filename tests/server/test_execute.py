"""POST /api/execute and /api/execute/batch through the real server and Docker."""

from __future__ import annotations

import pytest
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


C_ADD = "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 2;printf(\"%ld\\n\",a+b);}\n"


async def test_execute_test_cases_and_verdicts(make_server, language_images):
    server = await make_server()
    body = {
        "language": "c", "files": [{"path": "add.c", "content": C_ADD}],
        "tests": [{"name": "small", "stdin": "1 2", "expected_stdout": "3"},
                  {"stdin": "40 2", "expected_stdout": "42\n"},
                  {"name": "bad", "stdin": "1 1", "expected_stdout": "3"},
                  {"name": "no input", "stdin": "", "expected_exit_code": 2}],
        "compare": "tokens", "limits": {"compile_timeout_s": 60},
    }
    r = await server.client.post("/api/execute", json=body)
    assert r.status_code == 200, r.text
    res = r.json()
    assert [t["verdict"] for t in res["tests"]] == ["accepted", "accepted", "wrong_answer", "accepted"]
    assert (res["verdict"], res["passed"], res["total"], res["stdout"]) == ("wrong_answer", 3, 4, "2\n")
    assert [t["name"] for t in res["tests"]] == ["small", None, "bad", "no input"]
    assert res["compile"]["exit_code"] == 0 and set(res["compile"]) == {
        "exit_code", "stdout", "stderr", "duration_ms", "termination"}
    broken = {**body, "files": [{"path": "add.c", "content": "int main( {"}]}
    res = (await server.client.post("/api/execute", json=broken)).json()
    assert (res["verdict"], res["tests"], res["passed"], res["total"]) == ("compile_error", [], 0, 4)
    assert "error" in res["compile"]["stderr"]
    r = await server.client.post("/api/execute", json={
        "files": [{"path": "main.py", "content": "import json, sys\nprint(json.dumps(sys.argv[1:]))"}],
        "args": ["a b", "--x"]})
    assert (r.json()["verdict"], r.json()["stdout"], r.json()["compile"]) == ("accepted", '["a b", "--x"]\n', None)


async def test_batch_of_languages_and_verdicts_in_order(make_server, language_images):
    server = await make_server()
    runs = [
        {"files": [{"path": "main.py", "content": "print(1)"}]},
        {"language": "javascript", "files": [{"path": "main.js", "content": "process.exit(3)"}]},
        {"language": "c", "files": [{"path": "main.c", "content": C_ADD}], "stdin": "2 2"},
        {"files": [{"path": "main.py", "content": "print(input())"}],
         "tests": [{"stdin": "x", "expected_stdout": "x"}, {"stdin": "y", "expected_stdout": "x"}]},
        {"language": "shell", "files": [{"path": "main.sh", "content": "echo $1"}], "args": ["arg"]},
    ]
    r = await server.client.post("/api/execute/batch", json={"runs": runs})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["verdict"] for x in res] == ["accepted", "runtime_error", "accepted", "wrong_answer", "accepted"]
    assert [x["stdout"] for x in res] == ["1\n", "", "4\n", "y\n", "arg\n"]
    assert res[3]["passed"] == 1 and res[1]["exit_code"] == 3


@pytest.fixture
def no_language_images(docker_client):
    """A base image name whose language images do not exist (a tag of the real base)."""
    docker_client.images.get("atomic-sandbox:latest").tag("atomic-sandbox-nolangs", "latest")
    yield "atomic-sandbox-nolangs:latest"
    docker_client.images.remove("atomic-sandbox-nolangs:latest", noprune=True)


async def test_bad_input_never_reaches_docker(make_server, no_language_images, docker_client):
    server = await make_server(sandbox_image=no_language_images, output_limit_bytes=100)
    with trio.fail_after(10):
        while not server.rt.sandbox.status()["available"]:
            await trio.sleep(0.05)
    py = {"files": [{"path": "main.py", "content": "print(1)"}]}
    cases = [
        ({**py, "language": "cobol"}, "validation_error", "language:"),
        ({"language": "go", "files": [{"path": "main.go", "content": ""}]}, "language_unavailable",
         "atomic sandbox build-image --language go"),
        ({**py, "tests": [{"stdin": ""}] * 65}, "validation_error", "tests:"),
        ({**py, "tests": [{"expected_stdout": "x" * 101}]}, "validation_error", "tests[0].expected_stdout:"),
        ({**py, "compare": "regex"}, "validation_error", "compare:"),
        ({**py, "limits": {"compile_memory_mb": 0}}, "validation_error", "limits.compile_memory_mb:"),
    ]
    for body, code, text in cases:
        r = await server.client.post("/api/execute", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (body, r.text)
        assert text in r.json()["error"]["message"], r.text
        r = await server.client.post("/api/execute/batch", json={"runs": [py, body]})
        assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
        assert r.json()["error"]["message"].startswith("runs[1]."), r.text
    gen = await server.client.post("/api/generate", json={"prompt": "x", "language": "rust"})
    assert gen.status_code == 422 and gen.json()["error"]["code"] == "language_unavailable"
    stats = server.rt.sandbox.statistics()
    assert (stats.runs_total, stats.containers_alive) == (0, 0)
    assert docker_client.containers.list(all=True, filters={"label": f"io.atomic.owner={server.rt.sandbox.owner}"}) == []
    status = (await server.client.get("/api/status")).json()
    assert status["languages"] == ["python", "shell"]
