"""atomic.json in every artifact, and ``atomic replay`` running the same job again, on a
real server (replay provider, real sandbox) through the real command line."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import trio

from atomic import __version__

REPO = Path(__file__).resolve().parents[2]
ECHO = "```python\nimport sys\nprint(sys.stdin.read().strip().upper())\n```\n"
LOWER = "```python\nimport sys\nprint(sys.stdin.read().strip().lower())\n```\n"
TESTS = [{"name": "abc", "stdin": "abc", "expected_stdout": "ABC"}]
TEST_CODE = "import subprocess, sys\nassert subprocess.run([sys.executable, 'main.py'], input='a', text=True, " \
            "capture_output=True).stdout == 'A\\n'\n"


def from_zip(blob: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        [name] = [n for n in zf.namelist() if n.endswith("/atomic.json")]
        return json.loads(zf.read(name))


def from_tar(blob: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        [member] = [m for m in tf.getmembers() if m.name.endswith("/atomic.json")]
        f = tf.extractfile(member)
        assert f is not None
        return json.loads(f.read())


async def artifact(server, job_id: str, fmt: str) -> bytes:
    r = await server.client.get(f"/api/jobs/{job_id}/artifact?format={fmt}")
    assert r.status_code == 200, r.text
    return r.content


async def test_every_artifact_holds_atomic_json(make_server, docker_client):
    server = await make_server(text=[LOWER, ECHO])
    r = await server.client.post("/api/generate", json={
        "prompt": "upper-case the input", "tests": TESTS, "test_code": TEST_CODE, "samples": 2, "seed": 7,
        "temperature": 0.6, "judge_all": True, "limits": {"timeout_s": 4}, "export": ["zip", "tar", "git"],
        "wait": True}, timeout=120)
    job = r.json()
    assert job["state"] == "COMPLETE", job["error"]
    zipped = from_zip(await artifact(server, job["id"], "zip"))
    assert from_tar(await artifact(server, job["id"], "tar")) == zipped
    git = await artifact(server, job["id"], "git")
    with tarfile.open(fileobj=io.BytesIO(git)) as tf:  # the git archive's work tree holds it too
        assert any(m.name.endswith("/atomic.json") for m in tf.getmembers())

    doc = zipped
    assert doc["version"] == __version__ and doc["job_id"] == job["id"] and doc["created_at"] == job["created_at"]
    assert (doc["prompt"], doc["language"]) == ("upper-case the input", "python")
    assert (doc["provider"], doc["model"]) == ("replay", "replay-1")
    assert doc["sampling"] == {"temperature": 0.6, "seed": 7, "seeds": [7, 8], "samples": 2, "repairs": 0,
                               "judge_all": True, "max_tokens": server.settings.max_tokens}
    # The limits the runs had: the given one, the server's defaults for the rest.
    assert doc["limits"]["timeout_s"] == 4 and doc["limits"]["memory_mb"] == server.settings.default_memory_mb
    image = docker_client.images.get("atomic-sandbox:latest")
    assert doc["sandbox_image"] == {"name": "atomic-sandbox:latest", "id": image.id}
    assert doc["tests"] == TESTS and doc["test_code"] == TEST_CODE
    assert doc["results"]["verdict"] == "accepted" and (doc["results"]["passed"], doc["results"]["total"]) == (2, 2)
    assert [t["name"] for t in doc["results"]["tests"]] == ["abc", "test_main.py"]
    # Seed 7 answers text (7 + 0) % 2 = ECHO, seed 8 LOWER (the replay provider's rule).
    assert [(c["index"], c["verdict"], c["seed"]) for c in doc["candidates"]] == [
        (0, "accepted", 7), (1, "wrong_answer", 8)]
    assert doc["chosen"] == 0 and doc["candidates"] == job["candidates"]
    assert sorted(a["candidate"] for a in doc["attempts"]) == [0, 1]
    assert doc["request"] == job["request"]
    # The kept program and its test program are beside it.
    with zipfile.ZipFile(io.BytesIO(await artifact(server, job["id"], "zip"))) as zf:
        names = sorted(n.split("/", 1)[1] for n in zf.namelist())
    assert names == ["atomic.json", "main.py", "test_main.py"]


async def run_cli(*args: str) -> trio.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ATOMIC_URL", None)
    with trio.fail_after(120):
        return await trio.run_process([sys.executable, "-m", "atomic", *args], capture_stdout=True,
                                      capture_stderr=True, check=False, env=env)


async def test_a_replayed_job_is_the_same_job(make_server, tmp_path):
    server = await make_server(text=[LOWER, ECHO], repair_attempts=2)
    settings = server.settings
    # Everything given: the replayed request is the original's, field for field.
    full = {
        "prompt": "upper-case the input", "language": "python", "priority": "high", "provider": "replay",
        "model": "replay-1", "execute": True, "tests": TESTS, "test_code": TEST_CODE, "samples": 2, "repairs": 1,
        "temperature": 0.5, "seed": 3, "judge_all": True, "export": ["zip", "tar"],
        "limits": {"timeout_s": 4.0, "memory_mb": 128, "cpus": 1.0, "pids": 32, "compile_timeout_s": 10.0,
                   "compile_memory_mb": 256},
    }
    # Defaults left to the server: the replay pins what they were.
    sparse = {"prompt": "upper-case the input", "tests": TESTS}
    for body in (full, sparse):
        r = await server.client.post("/api/generate", json={**body, "wait": True}, timeout=120)
        original = r.json()
        zipped = tmp_path / f"{original['id']}.zip"
        zipped.write_bytes(await artifact(server, original["id"], "zip"))

        proc = await run_cli("replay", str(zipped), "--url", server.url, "--quiet", "--out", str(tmp_path / "out"))
        assert proc.returncode in (0, 1), proc.stderr.decode()
        assert original["state"].encode() in proc.stdout, proc.stdout.decode()

        jobs = (await server.client.get("/api/jobs")).json()["jobs"]
        replayed = jobs[0]
        assert replayed["id"] != original["id"]
        if body is full:
            assert replayed["request"] == original["request"]
        else:
            pinned = {"provider": "replay", "model": "replay-1", "temperature": settings.temperature,
                      "seed": settings.seed, "samples": 1, "repairs": settings.repair_attempts}
            assert replayed["request"] == {**original["request"], **pinned, "limits": {
                "timeout_s": settings.timeout_s, "memory_mb": settings.default_memory_mb, "cpus": settings.cpus,
                "pids": settings.pids, "compile_timeout_s": settings.compile_timeout_s,
                "compile_memory_mb": settings.compile_memory_mb}}
        # The same job: the same inputs, the same outcome.
        again = from_zip(await artifact(server, replayed["id"], "zip"))
        first = from_zip(zipped.read_bytes())
        same = ("prompt", "language", "provider", "model", "sampling", "limits", "sandbox_image", "tests",
                "test_code", "chosen", "version")
        assert {k: again[k] for k in same} == {k: first[k] for k in same}
        assert [(c["verdict"], c["passed"], c["seed"]) for c in again["candidates"]] == [
            (c["verdict"], c["passed"], c["seed"]) for c in first["candidates"]]
        assert replayed["state"] == original["state"] and replayed["verdict"] == original["verdict"]
