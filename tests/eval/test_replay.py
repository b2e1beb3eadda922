"""atomic replay: the generate body an artifact's atomic.json gives back, and a replayed
job on a real server (replay provider, real sandbox)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from atomic.client import read_provenance, replay_body
from evalutil import run_cli

PROVENANCE = {
    "prompt": "Print the sum of 1..100.",
    "language": "python",
    "provider": "local",
    "model": "SmolLM2-135M-Instruct.Q4_1",
    "sampling": {"temperature": 0.8, "seed": 41, "seeds": [41, 42, 43], "samples": 3},
    "limits": {"timeout_s": 5, "memory_mb": 128},
    "tests": [{"stdin": "", "expected_stdout": "5050\n"}],
    "sandbox_image": "sha256:abc",
    "attempts": 2,
    "version": "0.1.0",
    "request": {"prompt": "Print the sum of 1..100.", "priority": "high", "wait": True, "export": ["zip", "tar"]},
}


def test_replay_body_takes_what_the_job_used() -> None:
    body = replay_body(PROVENANCE)
    assert body == {
        "prompt": "Print the sum of 1..100.", "language": "python", "priority": "high", "export": ["zip", "tar"],
        "provider": "local", "model": "SmolLM2-135M-Instruct.Q4_1", "limits": {"timeout_s": 5, "memory_mb": 128},
        "tests": [{"stdin": "", "expected_stdout": "5050\n"}], "temperature": 0.8, "seed": 41, "samples": 3,
    }
    # Flat sampling fields and test_code work too; the seed list gives the base seed.
    flat = replay_body({"prompt": "p", "temperature": 0.5, "sampling": {"seeds": [9, 10]}, "test_code": "x"})
    assert flat == {"prompt": "p", "temperature": 0.5, "seed": 9, "test_code": "x"}
    with pytest.raises(ValueError, match="no prompt"):
        replay_body({"language": "python"})


def test_reads_atomic_json_from_archives(tmp_path: Path) -> None:
    data = json.dumps(PROVENANCE).encode()
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("atomic-1/main.py", "print(1)\n")
        zf.writestr("atomic-1/atomic.json", data)
    t = tmp_path / "a.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("atomic-1/atomic.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    j = tmp_path / "atomic.json"
    j.write_bytes(data)
    assert read_provenance(str(z)) == read_provenance(str(t)) == read_provenance(str(j)) == PROVENANCE
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("main.py", "")
    with pytest.raises(ValueError, match=r"no atomic\.json"):
        read_provenance(str(empty))


async def test_replay_print(tmp_path: Path) -> None:
    j = tmp_path / "atomic.json"
    j.write_text(json.dumps(PROVENANCE))
    proc = await run_cli("replay", str(j), "--print")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == replay_body(PROVENANCE)
    bad = await run_cli("replay", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and b"atomic replay:" in bad.stderr


@pytest.mark.docker
async def test_replay_runs_the_job_again(make_server, tmp_path: Path) -> None:
    # Today's fields only (the server takes samples/tests once tested generation lands).
    server = await make_server()
    j = tmp_path / "atomic.json"
    j.write_text(json.dumps({"prompt": "Print squares.", "language": "python", "provider": "replay",
                             "limits": {"timeout_s": 5}, "request": {"export": ["zip"]}}))
    proc = await run_cli("replay", str(j), "--url", server.url, "--quiet", "--out", str(tmp_path / "got"))
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"COMPLETE" in proc.stdout
    jobs = (await server.client.get("/api/jobs")).json()["jobs"]
    assert len(jobs) == 1 and jobs[0]["request"]["prompt"] == "Print squares."
    assert list((tmp_path / "got").glob("*.zip"))
