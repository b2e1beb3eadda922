"""The shipped task set and the HumanEval/MBPP framing, checked through the real sandbox.

Every reference solution in benchmarks/tasks/atomic_solutions.jsonl must pass its task's
tests when run by a real Atomic server (``POST /api/execute/batch``, Docker). Each case is
one run (stdin, args) compared as the contract's ``lines`` mode does; a ``test_code`` task
runs the program, then ``test_main.py`` beside it. (Once the engine's ``tests`` field is
merged, the same check can go through ``/api/execute`` with ``tests`` and its verdicts.)

The framing test shows that what ``atomic eval`` sends for HumanEval and MBPP tasks is
right: a known-correct completion, written as the prompt asks (the whole main.py), passes
the generated ``test_code`` in the sandbox, and a wrong one fails it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atomic.eval.formats import read_tasks
from atomic.languages import LANGUAGES

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO / "benchmarks" / "tasks" / "atomic.jsonl"
SOLUTIONS = REPO / "benchmarks" / "tasks" / "atomic_solutions.jsonl"
DATA = Path(__file__).parent / "data"


def lines(text: str) -> list[str]:
    """The contract's ``lines`` compare: trailing whitespace per line and trailing blank lines ignored."""
    out = [line.rstrip() for line in text.split("\n")]
    while out and out[-1] == "":
        out.pop()
    return out


def test_the_task_set_is_well_formed() -> None:
    tasks, bad = read_tasks(TASKS)
    assert bad == [] and len(tasks) >= 30
    assert sum(t.language == "python" for t in tasks) > len(tasks) * 0.8
    assert sum(t.test_code is not None for t in tasks) >= 3
    solutions = [json.loads(line) for line in SOLUTIONS.read_text().splitlines()]
    assert sorted(s["task_id"] for s in solutions) == sorted(t.task_id for t in tasks)


def _runs(task: Any, files: list[dict[str, str]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(execute body, what it must give) for each check of one task."""
    lang = LANGUAGES[task.language]
    out = []
    for case in task.tests or ():
        body = {"language": task.language, "files": files, "stdin": case.get("stdin", ""),
                "command": lang.command() + list(case.get("args", []))}
        out.append((body, {"stdout": case["expected_stdout"], "exit_code": case.get("expected_exit_code", 0)}))
    if task.test_code is not None:
        both = [*files, {"path": "test_main.py", "content": task.test_code}]
        out.append(({"language": task.language, "files": both, "command": lang.command()}, {"exit_code": 0}))
        out.append(({"language": task.language, "files": both, "command": ["python3", "test_main.py"]},
                    {"exit_code": 0}))
    return out


async def _execute_all(server: Any, checks: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[str]:
    failures = []
    for i in range(0, len(checks), 64):
        chunk = checks[i : i + 64]
        resp = await server.client.post("/api/execute/batch", json={"runs": [body for _, body, _ in chunk]},
                                        timeout=300)
        assert resp.status_code == 200, resp.text
        for (what, _, want), got in zip(chunk, resp.json()["results"], strict=True):
            ok = got["termination"] == "exited" and got["exit_code"] == want["exit_code"]
            if "stdout" in want:
                ok = ok and lines(got["stdout"]) == lines(want["stdout"])
            if not ok:
                failures.append(f"{what}: got exit {got['exit_code']} ({got['termination']}), "
                                f"stdout {got['stdout']!r}, stderr {got['stderr'][-300:]!r}; wanted {want}")
    return failures


@pytest.mark.docker
@pytest.mark.slow
async def test_every_reference_solution_passes_in_the_sandbox(make_server) -> None:
    server = await make_server(max_concurrent=4)
    tasks = {t.task_id: t for t in read_tasks(TASKS)[0]}
    checks = []
    for line in SOLUTIONS.read_text().splitlines():
        sol = json.loads(line)
        task = tasks[sol["task_id"]]
        for body, want in _runs(task, sol["files"]):
            checks.append((task.task_id, body, want))
    assert len(checks) > 100
    assert await _execute_all(server, checks) == []


@pytest.mark.docker
async def test_humaneval_and_mbpp_framing_in_the_sandbox(make_server) -> None:
    server = await make_server()
    checks = []
    wrong = []
    he_tasks = {t.task_id: t for t in read_tasks(DATA / "humaneval_sample.jsonl")[0]}
    for raw in (DATA / "humaneval_sample.jsonl").read_text().splitlines():
        obj = json.loads(raw)
        task = he_tasks[obj["task_id"]]
        # The completed function, as the prompt asks: the prompt's text and its body.
        good = [{"path": "main.py", "content": obj["prompt"] + obj["canonical_solution"]}]
        bad = [{"path": "main.py", "content": obj["prompt"] + "    return None\n"}]
        checks += [(task.task_id, body, want) for body, want in _runs(task, good)]
        wrong.append((task.task_id, _runs(task, bad)[-1][0], {"exit_code": 0}))
    mb_tasks = {t.task_id: t for t in read_tasks(DATA / "mbpp_sample.jsonl")[0]}
    for raw in (DATA / "mbpp_sample.jsonl").read_text().splitlines():
        obj = json.loads(raw)
        task = mb_tasks[str(obj["task_id"])]
        good = [{"path": "main.py", "content": obj["code"]}]
        name = task.test_code.split("assert ", 1)[1].split("(", 1)[0]
        bad = [{"path": "main.py", "content": f"def {name}(*args):\n    return 0\n"}]
        checks += [(task.task_id, body, want) for body, want in _runs(task, good)]
        wrong.append((task.task_id, _runs(task, bad)[-1][0], {"exit_code": 0}))
    assert await _execute_all(server, checks) == []
    # Every wrong completion fails its test program (an AssertionError: exit 1).
    failures = await _execute_all(server, wrong)
    assert len(failures) == len(wrong)
    assert all("AssertionError" in f for f in failures)
