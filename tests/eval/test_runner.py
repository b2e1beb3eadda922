"""atomic eval against a server speaking the contract's tested generation.

Most tests use ``contract_server.ContractServer`` (real HTTP and WebSocket on 127.0.0.1,
the real runner and CLI), whose jobs are scripted: verdicts, delays, hangs and failures
on cue. test_scores_on_a_real_server runs atomic eval against Atomic's own server (the
replay provider as the model, Docker judging the programs) and checks the scores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from atomic.eval.estimator import pass_at_k
from atomic.eval.formats import read_tasks
from atomic.eval.report import summarize
from atomic.eval.results import ResultsFile
from atomic.eval.runner import EvalOptions, Runner, RunState
from evalutil import cli, cli_env, read_results, run_cli, write_tasks
from contract_server import ContractServer, Outcome

A, W = "accepted", "wrong_answer"


async def test_cli_scores_a_run(contract: ContractServer, tmp_path: Path) -> None:
    verdicts = [[A, W, W, W], [W, W, W, W], [A, A, A, A], [W, A, W, A], [W, W, W, A]]
    prompts = [f"task {i}" for i in range(len(verdicts))]
    contract.script = {p: Outcome(verdicts=v) for p, v in zip(prompts, verdicts, strict=True)}
    tasks = write_tasks(tmp_path / "tasks.jsonl", prompts)
    out = tmp_path / "out"
    proc = await run_cli("eval", str(tasks), "--url", contract.url, "--samples", "4", "--out", str(out),
                         "--seed", "7", "--concurrency", "3")
    assert proc.returncode == 0, proc.stderr.decode()

    # One job per task, with the contract's fields.
    assert len(contract.posts) == 5
    body = contract.posts[0]
    assert body["samples"] == 4 and body["judge_all"] is True and body["repairs"] == 0
    assert body["temperature"] == 0.8 and body["seed"] == 7 and body["execute"] is True
    assert body["tests"] == [{"stdin": "", "expected_stdout": "ok\n"}] and "test_code" not in body

    recs = {r["task_id"]: r for r in read_results(out / "results.jsonl")}
    assert sorted(recs) == [f"t{i:03d}" for i in range(5)]
    for i, v in enumerate(verdicts):
        rec = recs[f"t{i:03d}"]
        assert [s["verdict"] for s in rec["samples"]] == v
        assert rec["n"] == 4 and rec["c"] == v.count(A) and rec["error"] is None
        assert rec["job_id"] in contract.jobs and rec["duration_ms"] > 0
        assert rec["samples"][0]["passed"] in (1, 3) and rec["samples"][0]["total"] == 3

    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 5 and summary["samples"] == 4 and summary["scored"] == 5
    for k in (1, 2, 4):
        want = sum(pass_at_k(4, v.count(A), k) for v in verdicts) / 5
        assert summary["pass@k"][str(k)] == pytest.approx(want, abs=1e-6)
    assert set(summary["pass@k"]) == {"1", "2", "4"}
    assert summary["provider"] == "replay" and summary["model"] == "replay-1"
    assert summary["interrupted"] is False and summary["errors"] == 0
    svg = (out / "pass_at_k.svg").read_text()
    assert svg.startswith("<svg") and svg.count('class="bar"') == 3
    assert f'data-value="{summary["pass@k"]["1"]:.6f}"' in svg
    stdout = proc.stdout.decode()
    assert "pass@k" in stdout and f"{100 * summary['pass@k']['4']:6.2f}%" in stdout
    # Not a terminal: one plain progress line per task.
    assert proc.stderr.decode().count(" accepted") == 5


async def test_limit_language_and_other_forms(contract: ContractServer, tmp_path: Path) -> None:
    data = Path(__file__).parent / "data"
    out = tmp_path / "he"
    proc = await run_cli("eval", str(data / "humaneval_sample.jsonl"), "--url", contract.url, "--limit", "2",
                         "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert [p["test_code"].splitlines()[-1] for p in contract.posts] == ["check(running_max)", "check(is_balanced)"]
    assert all(p["samples"] == 1 and "temperature" not in p for p in contract.posts)
    assert json.loads((out / "summary.json").read_text())["pass@k"] == {"1": 1.0}
    contract.posts.clear()
    proc = await run_cli("eval", str(data / "atomic_sample.jsonl"), "--url", contract.url, "--language", "shell",
                         "--out", str(tmp_path / "sh"))
    # Only the task that names no language runs, in the language asked for.
    assert proc.returncode == 0, proc.stderr.decode()
    assert [(p["prompt"][:5], p["language"]) for p in contract.posts] == [("Print", "shell")]
    proc = await run_cli("eval", str(data / "mbpp_sample.jsonl"), "--url", contract.url, "--language", "go",
                         "--out", str(tmp_path / "go"))
    assert proc.returncode == 2 and b"no task to run" in proc.stderr


async def test_queue_full_is_waited_out(contract: ContractServer, tmp_path: Path) -> None:
    contract.queue_full_first = 4
    tasks = write_tasks(tmp_path / "tasks.jsonl", [f"q{i}" for i in range(3)])
    out = tmp_path / "out"
    proc = await run_cli("eval", str(tasks), "--url", contract.url, "--out", str(out), "--concurrency", "2")
    assert proc.returncode == 0, proc.stderr.decode()
    assert contract.rejected_429 == 4 and len(contract.jobs) == 3
    assert all(r["error"] is None and r["c"] == 1 for r in read_results(out / "results.jsonl"))


async def test_errors_are_recorded_per_task(contract: ContractServer, tmp_path: Path) -> None:
    contract.script = {"boom": Outcome(status=500), "bad": Outcome(status=422),
                       "old": Outcome(no_candidates=True)}
    path = write_tasks(tmp_path / "tasks.jsonl", ["fine", "boom", "bad", "old", "fine too"])
    tasks, _ = read_tasks(path)
    results = ResultsFile(tmp_path / "results.jsonl")
    results.open()
    opts = EvalOptions(url=contract.url, samples=1, concurrency=2, retry_backoff_s=0.01, submit_retries=2)
    runner = Runner(opts, results, RunState(total=len(tasks)))
    with trio.fail_after(30):
        await runner.run(tasks)
    await runner.aclose()
    results.close()
    recs = {r["task_id"]: r for r in read_results(results.path)}
    assert len(recs) == 5
    assert recs["t000"]["c"] == 1 and recs["t004"]["c"] == 1
    assert recs["t001"]["error"]["code"] == "internal_error" and recs["t001"]["job_id"] is None
    assert contract.posts.count(contract.posts[1]) == 3  # the first try and 2 retries
    assert recs["t002"]["error"] == {"code": "validation_error", "message": "HTTP 422: scripted failure"}
    assert recs["t003"]["error"]["code"] == "no_candidates" and recs["t003"]["job_id"]
    summary = summarize(recs.values(), tasks=5, samples=1)
    assert summary["scored"] == 2 and summary["errors"] == 3 and summary["pass@k"]["1"] == 1.0
    assert summary["errors_by_code"] == {"internal_error": 1, "no_candidates": 1, "validation_error": 1}


async def test_job_timeout_cancels_the_job(contract: ContractServer, tmp_path: Path) -> None:
    contract.script = {"slow": Outcome(hang=True)}
    tasks, _ = read_tasks(write_tasks(tmp_path / "t.jsonl", ["slow"]))
    results = ResultsFile(tmp_path / "results.jsonl")
    results.open()
    runner = Runner(EvalOptions(url=contract.url, job_timeout_s=0.5), results, RunState(total=1))
    with trio.fail_after(20):
        await runner.run(tasks)
    await runner.aclose()
    rec = read_results(results.path)[0]
    assert rec["error"]["code"] == "job_timeout"
    assert contract.deleted == [rec["job_id"]] and contract.jobs[rec["job_id"]]["state"] == "CANCELLED"


def test_results_file_drops_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"task_id": "a", "n": 1, "c": 1}\n{"task_id": "b", "n"')
    rf = ResultsFile(path)
    rf.open()
    assert set(rf.records) == {"a"} and rf.dropped == 1
    rf.append({"task_id": "b", "n": 1, "c": 0, "error": None})
    rf.close()
    assert [json.loads(x)["task_id"] for x in path.read_text().splitlines()] == ["a", "b"]
    again = ResultsFile(path)
    again.open()
    again.close()
    assert again.done("a") and again.done("b") and not again.done("c") and again.dropped == 0


async def _wait_lines(path: Path, n: int, limit: float = 30) -> None:
    with trio.fail_after(limit):
        while not path.exists() or len(path.read_text().splitlines()) < n:
            await trio.sleep(0.05)


@pytest.mark.slow
async def test_resume_after_kill(contract: ContractServer, tmp_path: Path) -> None:
    prompts = [f"r{i}" for i in range(12)]
    contract.script = {p: Outcome(verdicts=[A, W] if i % 3 else [W, W], delay_s=0.25) for i, p in enumerate(prompts)}
    tasks = write_tasks(tmp_path / "tasks.jsonl", prompts)
    out = tmp_path / "out"
    args = cli("eval", str(tasks), "--url", contract.url, "--samples", "2", "--out", str(out), "--concurrency", "2")
    proc = await trio.lowlevel.open_process(args, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await _wait_lines(out / "results.jsonl", 4)
    proc.kill()  # SIGKILL: no cleanup of any kind
    await proc.wait()
    first = read_results(out / "results.jsonl")
    assert 4 <= len(first) < 12

    again = await run_cli("eval", str(tasks), "--url", contract.url, "--samples", "2", "--out", str(out),
                          "--concurrency", "2")
    assert again.returncode == 0, again.stderr.decode()
    assert f"resuming: {len(first)} of 12".encode() in again.stderr
    recs = read_results(out / "results.jsonl")
    ids = [r["task_id"] for r in recs]
    assert sorted(ids) == [f"t{i:03d}" for i in range(12)]  # none lost, none twice
    assert recs[: len(first)] == first  # what was finished was kept as it was
    posted = [p["prompt"] for p in contract.posts]
    assert set(posted) == set(prompts)
    assert len(posted) - 12 <= 2  # at most the tasks in flight at the kill ran twice
    summary = json.loads((out / "summary.json").read_text())
    want = sum(pass_at_k(2, 0 if i % 3 == 0 else 1, 1) for i in range(12)) / 12
    assert summary["recorded"] == 12 and summary["pass@k"]["1"] == pytest.approx(want)
    assert summary["pass@k"]["2"] == pytest.approx(8 / 12)
    # A different --samples into the same folder is refused, not mixed.
    mixed = await run_cli("eval", str(tasks), "--url", contract.url, "--samples", "4", "--out", str(out))
    assert mixed.returncode == 2 and b"other samples" in mixed.stderr


@pytest.mark.slow
async def test_ctrl_c_cancels_jobs_in_flight(contract: ContractServer, tmp_path: Path) -> None:
    prompts = ["quick 0", "quick 1", "hang 0", "hang 1", "hang 2", "never started"]
    contract.script = {p: Outcome(hang=p.startswith("hang")) for p in prompts}
    tasks = write_tasks(tmp_path / "tasks.jsonl", prompts)
    out = tmp_path / "out"
    args = cli("eval", str(tasks), "--url", contract.url, "--out", str(out), "--concurrency", "3")
    proc = await trio.lowlevel.open_process(args, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with trio.fail_after(30):
        while len(contract.running()) < 3:
            await trio.sleep(0.05)
    running = sorted(contract.running())
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(20):
        code = await proc.wait()
    assert code == 130
    assert sorted(contract.deleted) == running
    assert all(contract.jobs[j]["state"] == "CANCELLED" for j in running)
    recs = read_results(out / "results.jsonl")
    assert sorted(r["task_id"] for r in recs) == ["t000", "t001"]  # finished ones kept; none in flight
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["recorded"] == 2
    assert "never started" not in [p["prompt"] for p in contract.posts]
    assert os.path.exists(out / "pass_at_k.svg")


@pytest.mark.docker
async def test_scores_on_a_real_server(make_server, tmp_path: Path) -> None:
    """Against a real Atomic server (replay provider, real sandbox): the replay provider's
    program (squares 1..10) passes a task that expects them and fails one that does not,
    each sample judged to the end (``judge_all``), so the scores are known exactly."""
    server = await make_server()
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in [
        {"task_id": "squares", "prompt": "Print the first 10 squares.",
         "tests": [{"stdin": "", "expected_stdout": "".join(f"{i * i}\n" for i in range(1, 11))}]},
        {"task_id": "wrong", "prompt": "Print 42.", "tests": [{"stdin": "", "expected_stdout": "42\n"}]},
        {"task_id": "tested", "prompt": "Squares.",
         "test_code": "import subprocess, sys\nout = subprocess.run([sys.executable, 'main.py'], "
                      "capture_output=True, text=True).stdout\nassert out.split()[-1] == '100'\n"},
    ]) + "\n")
    out = tmp_path / "out"
    proc = await run_cli("eval", str(path), "--url", server.url, "--out", str(out), "--samples", "2", limit=180)
    assert proc.returncode == 0, proc.stderr.decode()
    recs = {r["task_id"]: r for r in read_results(out / "results.jsonl")}
    assert {k: (r["n"], r["c"]) for k, r in recs.items()} == {"squares": (2, 2), "wrong": (2, 0), "tested": (2, 2)}
    assert [s["verdict"] for s in recs["wrong"]["samples"]] == ["wrong_answer", "wrong_answer"]
    # Every sample was sent with its own seed and judged to the end.
    jobs = (await server.client.get("/api/jobs")).json()["jobs"]
    assert all(j["request"]["samples"] == 2 and j["request"]["judge_all"] for j in jobs)
    assert all([c["seed"] for c in j["candidates"]] == [j["candidates"][0]["seed"], j["candidates"][0]["seed"] + 1]
               for j in jobs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass@k"]["1"] == pytest.approx(2 / 3) and summary["pass@k"]["2"] == pytest.approx(2 / 3)
