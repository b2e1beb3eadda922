"""Tested generation on a real server (issue 11): jobs judged by test cases and test
programs, best-of-k candidates, repairs told the failing case. The model is the replay
provider, so every outcome is known in advance; the programs run in the real sandbox."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

ECHO = "```python\nimport sys\nprint(sys.stdin.read().strip().upper())\n```\n"
LOWER = "```python\nimport sys\nprint(sys.stdin.read().strip().lower())\n```\n"
CRASH = "```python\nraise SystemExit(3)\n```\n"
SLOW = "```python\nimport time\ntime.sleep(60)\n```\n"
UPPER_CASES = [{"name": "abc", "stdin": "abc", "expected_stdout": "ABC"}, {"stdin": "x y", "expected_stdout": "X Y"}]
# Passes the first case only (upper-cases it) and fails the second.
HALF = "```python\nimport sys\ns = sys.stdin.read().strip()\nprint(s.upper() if s == 'abc' else s)\n```\n"

ADD = ("```python\ndef add(a, b):\n    return a + b\n\n\nif __name__ == \"__main__\":\n    print(add(2, 3))\n```\n")
SUB = ("```python\ndef add(a, b):\n    return a - b\n\n\nif __name__ == \"__main__\":\n    print(add(2, 3))\n```\n")
TEST_ADD = "from main import add\n\nassert add(2, 3) == 5, add(2, 3)\nassert add(-1, 1) == 0\nprint('ok')\n"


async def generate(server, **body) -> dict:
    r = await server.client.post("/api/generate", json={"prompt": "upper-case the input", "wait": True, **body},
                                 timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


async def test_passing_tests_complete_the_job(make_server):
    server = await make_server(text=ECHO)
    doc = await generate(server, tests=UPPER_CASES)
    assert doc["state"] == "COMPLETE", doc["error"]
    assert (doc["verdict"], doc["passed"], doc["total"]) == ("accepted", 2, 2)
    assert [(t["name"], t["verdict"], t["stdout"]) for t in doc["tests"]] == [
        ("abc", "accepted", "ABC\n"), (None, "accepted", "X Y\n")]
    assert doc["candidates"] == [{"index": 0, "verdict": "accepted", "passed": 2, "total": 2, "attempts": 1,
                                  "seed": server.settings.seed}]
    assert doc["chosen"] == 0 and doc["execution"]["verdict"] == "accepted"


async def test_failing_tests_fail_the_job_and_keep_the_candidate(make_server):
    server = await make_server(text=LOWER)
    doc = await generate(server, tests=UPPER_CASES)
    assert doc["state"] == "FAILED" and doc["error"]["code"] == "tests_failed", doc["error"]
    assert doc["error"]["stage"] == "EXECUTING" and "0/2 passed" in doc["error"]["message"]
    assert (doc["verdict"], doc["passed"], doc["total"]) == ("wrong_answer", 0, 2)
    assert [t["stdout"] for t in doc["tests"]] == ["abc\n", "x y\n"]
    assert doc["chosen"] == 0 and doc["candidates"][0]["verdict"] == "wrong_answer"
    # The best candidate is kept: its files and its artifact (with atomic.json).
    assert [f["path"] for f in doc["files"]] == ["main.py"]
    art = await server.client.get(f"/api/jobs/{doc['id']}/artifact?format=zip")
    assert art.status_code == 200
    assert "atomic.json" in zip_names(art.content)


async def test_a_test_program_imports_the_program(make_server):
    server = await make_server(text=[ADD, SUB])
    good = await generate(server, prompt="add two numbers", test_code=TEST_ADD, seed=0)
    assert good["state"] == "COMPLETE", good["error"]
    assert [(t["name"], t["verdict"]) for t in good["tests"]] == [("main.py", "accepted"),
                                                                  ("test_main.py", "accepted")]
    assert good["tests"][1]["stdout"] == "ok\n" and (good["passed"], good["total"]) == (2, 2)
    assert sorted(f["path"] for f in good["files"]) == ["main.py", "test_main.py"]  # saved beside the program
    bad = await generate(server, prompt="add two numbers", test_code=TEST_ADD, seed=1)
    assert bad["state"] == "FAILED" and bad["error"]["code"] == "tests_failed"
    assert [t["verdict"] for t in bad["tests"]] == ["accepted", "runtime_error"]
    assert "AssertionError: -1" in bad["tests"][1]["stderr"]


async def test_tests_and_a_test_program_together(make_server):
    server = await make_server(text=ECHO)
    test = "import subprocess, sys\nout = subprocess.run([sys.executable, 'main.py'], input='q', text=True," \
           " capture_output=True).stdout\nassert out == 'Q\\n', out\n"
    doc = await generate(server, tests=UPPER_CASES, test_code=test)
    assert doc["state"] == "COMPLETE", doc["error"]
    assert [t["name"] for t in doc["tests"]] == ["abc", None, "test_main.py"] and doc["total"] == 3


@pytest.mark.parametrize("language, program, test_code", [
    ("javascript",
     "```javascript\nfunction add(a, b) { return a + b; }\nmodule.exports = { add };\n"
     "if (require.main === module) console.log(add(2, 3));\n```\n",
     "const { add } = require('./main.js');\nif (add(2, 3) !== 5) process.exit(1);\nconsole.log('ok');\n"),
    ("java",
     "```java\npublic class Main {\n  static int add(int a, int b) { return a + b; }\n"
     "  public static void main(String[] args) { System.out.println(add(2, 3)); }\n}\n```\n",
     "public class TestMain {\n  public static void main(String[] args) {\n"
     "    if (Main.add(2, 3) != 5) System.exit(1);\n    System.out.println(\"ok\");\n  }\n}\n"),
    ("shell", "```sh\necho 5\n```\n", "[ \"$(sh main.sh)\" = 5 ] || exit 1\necho ok\n"),
])
async def test_a_test_program_in_other_languages(make_server, language_images, language, program, test_code):
    server = await make_server(text=program)
    doc = await generate(server, prompt="add", language=language, test_code=test_code)
    assert doc["state"] == "COMPLETE", (doc["error"], doc["tests"])
    assert doc["tests"][-1]["stdout"] == "ok\n" and doc["tests"][-1]["verdict"] == "accepted"


async def test_a_test_program_that_hangs_or_floods_is_judged_by_the_limits(make_server):
    server = await make_server(text=ADD, output_limit_bytes=1 << 16)
    hang = await generate(server, test_code="while True:\n    pass\n", limits={"timeout_s": 2})
    assert hang["state"] == "FAILED" and hang["tests"][-1]["verdict"] == "timeout", hang["tests"]
    flood = await generate(server, test_code="import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    assert flood["state"] == "FAILED" and flood["tests"][-1]["verdict"] == "output_limit", flood["tests"]
    assert flood["tests"][-1]["truncated"] is True


# --- best of k -----------------------------------------------------------------------


async def test_one_passing_candidate_among_failing_ones_is_kept(make_server):
    server = await make_server(text=[LOWER, CRASH, ECHO])
    doc = await generate(server, tests=UPPER_CASES, samples=3, seed=0, judge_all=True)
    assert doc["state"] == "COMPLETE", doc["error"]
    assert [(c["index"], c["verdict"], c["passed"], c["seed"]) for c in doc["candidates"]] == [
        (0, "wrong_answer", 0, 0), (1, "runtime_error", 0, 1), (2, "accepted", 2, 2)]
    assert doc["chosen"] == 2 and doc["verdict"] == "accepted"
    # Each sample asked the model with its own seed, the same temperature.
    asked = sorted((r.seed, r.temperature) for r in server.provider.requests)
    assert asked == [(0, 0.2), (1, 0.2), (2, 0.2)]
    # Every candidate's round is recorded, naming it.
    assert sorted((a["candidate"], a["attempt"]) for a in doc["attempts"]) == [(0, 1), (1, 1), (2, 1)]


async def test_judge_all_keeps_the_first_passing_by_index(make_server):
    server = await make_server(text=[LOWER, ECHO, ECHO])
    doc = await generate(server, tests=UPPER_CASES, samples=3, seed=0, judge_all=True)
    assert [c["verdict"] for c in doc["candidates"]] == ["wrong_answer", "accepted", "accepted"]
    assert doc["chosen"] == 1


async def test_the_first_to_pass_wins_and_the_others_are_cancelled(make_server):
    server = await make_server(text=[ECHO, SLOW], timeout_s=60, max_timeout_s=60)
    t0 = trio.current_time()
    doc = await generate(server, tests=UPPER_CASES[:1], samples=2, seed=0)
    assert doc["state"] == "COMPLETE" and doc["chosen"] == 0
    assert [c["verdict"] for c in doc["candidates"]] == ["accepted", "cancelled"]
    assert trio.current_time() - t0 < 40  # the slow one's sandbox was stopped, not waited out


async def test_with_none_passing_the_most_cases_passed_wins(make_server):
    server = await make_server(text=[LOWER, HALF, CRASH])
    doc = await generate(server, tests=UPPER_CASES, samples=3, seed=0)
    assert doc["state"] == "FAILED" and doc["error"]["code"] == "tests_failed"
    assert [c["passed"] for c in doc["candidates"]] == [0, 1, 0]
    assert doc["chosen"] == 1 and (doc["passed"], doc["total"]) == (1, 2)
    assert "best of 3 candidates: #1" in doc["error"]["message"]


# --- repairs -------------------------------------------------------------------------


async def test_a_repair_is_told_the_failing_case(make_server):
    server = await make_server(text=[HALF, ECHO], repair_attempts=2)
    doc = await generate(server, tests=UPPER_CASES, seed=0, repairs=1)
    assert doc["state"] == "COMPLETE", doc["error"]
    assert doc["candidates"][0]["attempts"] == 2
    assert [a["execution"]["verdict"] for a in doc["attempts"]] == ["wrong_answer", "accepted"]
    first, repair = server.provider.requests
    assert [m.role for m in repair.messages] == ["system", "user", "assistant", "user"]
    told = repair.messages[-1].content
    assert repair.messages[2].content == HALF  # its own answer, then what it got wrong
    assert "test case 2 of 2: wrong_answer" in told
    assert "Its input (stdin) was:\n```\nx y\n```" in told
    assert "It should have printed:\n```\nX Y\n```" in told
    assert "It printed:\n```\nx y\n```" in told
    # The first request says how the program is judged, never the cases themselves.
    assert "standard input" in first.messages[1].content and "X Y" not in first.messages[1].content


async def test_a_repair_of_a_test_program_failure_shows_the_test(make_server):
    server = await make_server(text=[SUB, ADD], repair_attempts=1)
    doc = await generate(server, prompt="add", test_code=TEST_ADD, seed=0)
    assert doc["state"] == "COMPLETE", doc["error"]
    told = server.provider.requests[-1].messages[-1].content
    assert "did not pass its test program, test_main.py (runtime_error, exit code 1)" in told
    assert TEST_ADD.strip() in told and "AssertionError: -1" in told


async def test_repairs_are_capped_by_the_server(make_server):
    server = await make_server(text=LOWER, repair_attempts=1)
    doc = await generate(server, tests=UPPER_CASES, repairs=5)
    assert doc["candidates"][0]["attempts"] == 2 and len(server.provider.requests) == 2


# --- streaming -----------------------------------------------------------------------


async def stream(server, body: dict) -> list[dict]:
    events = []
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps(body))
        with trio.fail_after(120):
            while True:
                event = json.loads(await ws.get_message())
                events.append(event)
                if event["type"] in ("done", "error"):
                    return events


async def test_stream_events_name_the_candidate(make_server):
    server = await make_server(text=[LOWER, ECHO])
    events = await stream(server, {"prompt": "p", "tests": UPPER_CASES, "samples": 2, "seed": 0,
                                   "judge_all": True})
    assert events[-1]["type"] == "done" and events[-1]["job"]["state"] == "COMPLETE"
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)
    for kind in ("token", "file", "output"):
        assert {e["candidate"] for e in by_type[kind]} == {0, 1}, kind
    # Live output names its candidate and its test case.
    out: dict[tuple[int, str | int], str] = {}
    for e in by_type["output"]:
        out[e["candidate"], e["case"]] = out.get((e["candidate"], e["case"]), "") + e["data"]
    assert out[(0, "abc")] == "abc\n" and out[(1, "abc")] == "ABC\n" and out[(1, 1)] == "X Y\n"
    # Each candidate's own stages, beside the job's (which name none).
    mine = [(e["candidate"], e["state"]) for e in by_type["state"] if "candidate" in e]
    for i in (0, 1):
        assert [s for c, s in mine if c == i] == ["GENERATING", "PACKAGING", "EXECUTING"]
    job = [e["state"] for e in by_type["state"] if "candidate" not in e]
    assert job[0] == "PARSING" and job[-1] == "COMPLETE" and "EXPORTING" in job
    # The job is at its least advanced live candidate's stage: without repairs it only moves on.
    order = ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING", "COMPLETE"]
    assert [order.index(s) for s in job] == sorted(order.index(s) for s in job), job
    stages = [s["name"] for s in events[-1]["job"]["stages"]]
    assert stages[:2] == ["PARSING", "GENERATING"] and stages[-2:] == ["EXECUTING", "EXPORTING"], stages
    # One sample: the stream is as it always was.
    single = await stream(server, {"prompt": "p", "tests": UPPER_CASES, "seed": 1})
    assert not any("candidate" in e for e in single)


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"samples": 9}, "samples"),
    ({"samples": 0}, "samples"),
    ({"tests": [{"stdin": ""}] * 65}, "tests"),
    ({"tests": []}, "tests"),
    ({"tests": [{"expected_stdout": "x" * 101}]}, "tests[0].expected_stdout"),
    ({"test_code": "assert (1"}, "test_code"),
    ({"test_code": "x" * 100_001}, "test_code"),
    ({"language": "javascript", "test_code": "from main import add\nassert add(1, 2) == 3\n"}, "test_code"),
    ({"language": "shell", "test_code": "def test():\n    pass\n"}, "test_code"),
    ({"language": "c", "test_code": "int main(void) { return 0; }"}, "test_code"),
    ({"execute": False, "tests": [{"stdin": "a"}]}, "execute"),
    ({"collect": True, "test_code": "assert True"}, "collect"),
])
async def test_bad_tested_generation_bodies_are_422(make_server_without_docker, body, field):
    server = await make_server_without_docker(output_limit_bytes=100)
    r = await server.client.post("/api/generate", json={"prompt": "p", **body})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(field + ": "), r.text
    assert (await server.client.get("/api/jobs")).json()["jobs"] == []  # no job was made


async def test_valid_test_programs_in_other_languages_are_accepted(make_server_without_docker):
    server = await make_server_without_docker()
    for language, code in [
        ("javascript", "const m = require('./main.js');\nif (m.add(1, 2) !== 3) process.exit(1);\n"),
        ("javascript", "console.log(1)\n"),  # valid Python too: never refused
        ("shell", "import_ok=1\n. ./main.sh\n[ \"$x\" = 1 ]\n"),
        ("java", "public class TestMain { public static void main(String[] a) { } }\n"),
    ]:
        r = await server.client.post("/api/generate", json={"prompt": "p", "language": language, "test_code": code})
        assert r.status_code == 202, (language, r.text)


async def test_a_bad_start_message_on_the_websocket_names_the_field(make_server_without_docker):
    server = await make_server_without_docker()
    events = await stream(server, {"prompt": "p", "test_code": "def (", "samples": 2})
    assert events[-1]["type"] == "error" and events[-1]["error"]["message"].startswith("test_code: ")


def zip_names(blob: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return [n.split("/", 1)[-1] for n in zf.namelist()]



async def test_atomic_generate_sends_tests_and_samples(make_server, tmp_path):
    server = await make_server(text=[LOWER, ECHO])
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps(UPPER_CASES))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ATOMIC_URL", None)
    with trio.fail_after(120):
        proc = await trio.run_process(
            [sys.executable, "-m", "atomic", "generate", "upper-case", "--url", server.url, "--tests", str(tests),
             "--samples", "2", "--seed", "0", "--judge-all", "--out", str(tmp_path)],
            capture_stdout=True, capture_stderr=True, check=False, env=env)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "candidate 0: wrong_answer 0/2" in out and "candidate 1: accepted 2/2" in out and "(kept)" in out
    assert "accepted: 2/2 tests passed" in out and "[candidate 1, case abc]" in out
    [job] = (await server.client.get("/api/jobs")).json()["jobs"]
    assert (job["request"]["samples"], job["request"]["seed"], job["request"]["judge_all"]) == (2, 0, True)
    assert job["request"]["tests"] == UPPER_CASES
