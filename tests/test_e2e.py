"""End to end, exactly as a user runs it: `atomic serve` as a process (the agent its
supervised child, the local llama.cpp model, the real Docker sandbox), driven over HTTP
and by `atomic generate`. SmolLM2-135M writes plausible but often wrong code, so this
checks the pipeline's record of what happened, never that the program is right."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile

import httpx
import pytest

PROMPT = "Write a Python program that prints the first 10 square numbers"
pytestmark = [pytest.mark.slow, pytest.mark.model]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(tmp_path, docker_client):
    port = free_port()
    sock_dir = tempfile.mkdtemp(prefix="atomic-e2e")
    env = {
        **os.environ,
        "ATOMIC_HTTP_PORT": str(port),
        "ATOMIC_DATA_DIR": str(tmp_path / "data"),
        "ATOMIC_IPC_SOCKET": f"{sock_dir}/agent.sock",
        "ATOMIC_WARM_POOL_SIZE": "1",
        "ATOMIC_LOG_FORMAT": "json",
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - the server writes it while it runs
    proc = subprocess.Popen([sys.executable, "-m", "atomic", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                st = httpx.get(url + "/api/status", timeout=2).json()
                if st["agent"]["healthy"] and st["sandbox"]["available"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server not ready in 120 s:\n" + (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.3)
        yield url, proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_prompt_to_tested_program_over_http(live, docker_client):
    url, _proc, _tmp_path = live
    t0 = time.monotonic()
    r = httpx.post(url + "/api/generate", json={"prompt": PROMPT, "export": ["zip", "git"]}, timeout=10)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 300
    while True:
        doc = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if doc["state"] in ("COMPLETE", "FAILED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    print(f"\nend-to-end job on the local model: {elapsed:.1f} s, state {doc['state']}")
    # The pipeline reached its end either way: a program ran and was judged.
    assert doc["state"] == "COMPLETE" or doc["error"]["code"] == "program_failed", doc["error"]
    assert doc["usage"]["provider"] == "local" and doc["usage"]["completion_tokens"] > 0
    assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"] + doc["usage"]["completion_tokens"]
    assert any(f["path"] == "main.py" for f in doc["files"])
    ex = doc["execution"]
    assert ex["termination"] in ("exited", "timeout", "oom", "pids", "output_limit")
    assert isinstance(ex["exit_code"], int) and ex["duration_ms"] > 0
    if doc["state"] == "COMPLETE":
        assert ex["exit_code"] == 0
    names = [s["name"] for s in doc["stages"]]
    assert names[:5] == ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"] or "GENERATING" in names
    arts = {a["format"]: a for a in doc["artifacts"]}
    assert set(arts) == {"zip", "git"}
    z = httpx.get(url + arts["zip"]["url"], timeout=10)
    assert z.status_code == 200 and hashlib.sha256(z.content).hexdigest() == arts["zip"]["sha256"]
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        inside = {n.split("/")[-1]: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    for f in doc["files"]:
        assert hashlib.sha256(inside[f["path"].split("/")[-1]]).hexdigest() == f["sha256"]


def test_atomic_generate_streams_and_saves_the_artifact(live, tmp_path):
    url, _proc, _ = live
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "atomic", "generate", "--url", url, "--out", str(out), PROMPT],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode in (0, 3), res.stderr  # 3: the job ended FAILED (the model's program failed)
    text = res.stdout
    for stage in ("PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"):
        assert f"] {stage}" in text
    assert "```" in text  # the model's tokens were streamed to the terminal
    zips = list(out.glob("*.zip"))
    assert len(zips) == 1 and f"artifact zip: {zips[0]}" in text
    with zipfile.ZipFile(zips[0]) as zf:
        assert any(n.endswith("main.py") for n in zf.namelist())


def test_sigterm_stops_server_and_agent_cleanly(live, docker_client):
    _url, proc, tmp_path = live
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    left = docker_client.api.containers(all=True, filters={"label": f"io.atomic.pid={proc.pid}"})
    assert left == []


def _serve(tmp_path, port, sock_dir, extra_env):
    env = {
        **os.environ,
        "ATOMIC_HTTP_PORT": str(port),
        "ATOMIC_DATA_DIR": str(tmp_path / "data"),
        "ATOMIC_IPC_SOCKET": f"{sock_dir}/agent.sock",
        "ATOMIC_WARM_POOL_SIZE": "0",
        "ATOMIC_LOG_FORMAT": "json",
        **extra_env,
    }
    log = open(tmp_path / f"serve-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - held by the server
    proc = subprocess.Popen([sys.executable, "-m", "atomic", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        try:
            if httpx.get(url + "/api/status", timeout=2).json()["agent"]["healthy"]:
                return proc, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server not ready in 60 s"
        time.sleep(0.2)


def test_kill_9_with_jobs_queued_and_running_loses_nothing(tmp_path, docker_client):
    """Every job answered 202 reaches a terminal state after a SIGKILL and a restart."""
    port = free_port()
    sock_dir = tempfile.mkdtemp(prefix="atomic-k9")
    slow = {"ATOMIC_PROVIDER": "replay", "ATOMIC_REPLAY_TOKENS_PER_S": "40", "ATOMIC_MAX_CONCURRENT": "2"}
    proc, url = _serve(tmp_path, port, sock_dir, slow)
    try:
        ids = []
        for i in range(6):
            r = httpx.post(url + "/api/generate", json={"prompt": f"job {i}", "execute": i % 2 == 0}, timeout=10)
            assert r.status_code == 202
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 30
        while not any(httpx.get(f"{url}/api/jobs/{j}", timeout=5).json()["state"] == "GENERATING" for j in ids):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        agent_pid = httpx.get(url + "/api/status", timeout=5).json()["agent"].get("pid")
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The agent child dies with its server, so the socket is free for the next one.
    if agent_pid:
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{agent_pid}"):
            assert time.monotonic() < deadline, "the agent outlived its server"
            time.sleep(0.1)
    proc2, url = _serve(tmp_path, port, sock_dir, {**slow, "ATOMIC_REPLAY_TOKENS_PER_S": "0"})
    try:
        deadline = time.monotonic() + 120
        docs = {}
        while len(docs) < len(ids):
            for j in ids:
                doc = httpx.get(f"{url}/api/jobs/{j}", timeout=5).json()
                if doc["state"] in ("COMPLETE", "FAILED", "CANCELLED"):
                    docs[j] = doc
            assert time.monotonic() < deadline, {j: d["state"] for j, d in docs.items()}
            time.sleep(0.2)
        assert all(d["state"] == "COMPLETE" for d in docs.values()), [d["error"] for d in docs.values()]
        assert sum(d["recovered"] for d in docs.values()) >= 1  # the interrupted ones were re-queued
    finally:
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(timeout=30) == 0
