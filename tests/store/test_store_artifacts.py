"""Artifacts: archives are read back with the standard library and the real git CLI."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from atomic.errors import ValidationError
from atomic.store import ArtifactError, ArtifactStore
from atomic.store import artifacts as artifacts_mod

FILES = [
    ("main.py", b"#!/usr/bin/env python3\nprint('hello')\n"),
    ("pkg/__init__.py", b""),
    ("pkg/util.py", b"def add(a, b):\n    return a + b\n"),
    ("README.md", "# Héllo\n".encode()),
]
JOB = "job-abc123"


def _check_record(rec: dict, fmt: str) -> bytes:
    data = Path(rec["path"]).read_bytes()
    assert rec["format"] == fmt
    assert rec["size"] == len(data)
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    return data


async def test_zip_contents_and_determinism(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    [rec] = await store.export(JOB, FILES, ["zip"])
    assert rec["filename"] == f"{JOB}.zip" and rec["media_type"] == "application/zip"
    assert Path(rec["path"]) == tmp_path / JOB / "project.zip"
    data = _check_record(rec, "zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == sorted(f"{JOB}/{p}" for p, _ in FILES)
        for path, content in FILES:
            assert zf.read(f"{JOB}/{path}") == content
            info = zf.getinfo(f"{JOB}/{path}")
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (zf.getinfo(f"{JOB}/main.py").external_attr >> 16) & 0o777 == 0o755
    # Same files, same bytes, whenever and in whatever order they come.
    [again] = await store.export(JOB, list(reversed(FILES)), ["zip"])
    assert again["sha256"] == rec["sha256"]


async def test_tar_contents(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    [rec] = await store.export(JOB, FILES, ["tar"])
    assert rec["filename"] == f"{JOB}.tar.gz" and rec["media_type"] == "application/gzip"
    data = _check_record(rec, "tar")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(f"{JOB}/{p}" for p, _ in FILES)
        for path, content in FILES:
            f = tar.extractfile(f"{JOB}/{path}")
            assert f is not None and f.read() == content
        assert all(m.mtime == 315532800 and m.uid == 0 for m in members)
    [again] = await store.export(JOB, FILES, ["tar"])
    assert again["sha256"] == rec["sha256"]


async def test_git_repository_with_one_commit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    prompt = "Write a calculator\n\nwith add and subtract. " + "x" * 5000
    [rec] = await store.export(JOB, FILES, ["git"], meta={"prompt": prompt, "created_at": "2025-01-02T03:04:05Z"})
    assert rec["filename"] == f"{JOB}.git.tar.gz"
    data = _check_record(rec, "git")
    out = tmp_path / "out"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    repo = out / JOB

    def git(*args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        return subprocess.run(
            ["git", "-c", f"safe.directory={repo}", "-C", str(repo), *args],
            check=True, capture_output=True, text=True, env=env,
        ).stdout

    assert git("rev-list", "--count", "HEAD").strip() == "1"
    assert git("ls-tree", "-r", "--name-only", "HEAD").split() == sorted(p for p, _ in FILES)
    assert git("status", "--porcelain") == ""  # the working tree is the commit
    assert git("log", "-1", "--format=%an <%ae>|%ad", "--date=iso-strict").strip() == (
        "Atomic <atomic@localhost>|2025-01-02T03:04:05+00:00"
    )
    message = git("log", "-1", "--format=%B")
    assert message.startswith("Write a calculator\n")
    assert "[prompt truncated]" in message and len(message) < 4200
    assert git("show", "HEAD:pkg/util.py").encode() == dict(FILES)["pkg/util.py"]
    assert git("symbolic-ref", "HEAD").strip() == "refs/heads/main"


async def test_all_formats_at_once_and_path(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.path(JOB, "zip") is None
    recs = await store.export(JOB, FILES, ["zip", "tar", "git", "zip"], meta={})
    assert [r["format"] for r in recs] == ["zip", "tar", "git"]
    for r in recs:
        assert store.path(JOB, r["format"]) == Path(r["path"])
    assert sorted(os.listdir(tmp_path / JOB)) == ["project.git.tar.gz", "project.tar.gz", "project.zip"]
    with pytest.raises(ValidationError):
        store.path(JOB, "rar")


async def test_remove(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    await store.export(JOB, FILES, ["zip"])
    await store.remove(JOB)
    assert store.path(JOB, "zip") is None
    assert not (tmp_path / JOB).exists()
    await store.remove(JOB)  # nothing left: no error


async def test_formats_deduplicated_and_unknown_ones_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    arts = await store.export(JOB, FILES, ["tar", "zip", "tar"])
    assert [a["format"] for a in arts] == ["tar", "zip"]
    with pytest.raises(ValidationError) as info:
        await store.export(JOB, FILES, ["zip", "rar"])
    assert info.value.field == "export"


@pytest.mark.parametrize("path", ["../evil.py", "/etc/passwd", "a/../../b", "", ".", "a\\b", "x\x00y"])
async def test_unsafe_paths_refused(tmp_path: Path, path: str) -> None:
    store = ArtifactStore(tmp_path / "a")
    with pytest.raises(ValidationError):
        await store.export(JOB, [(path, b"x")], ["zip"])
    assert not (tmp_path / "a").exists()


async def test_bad_job_id_and_duplicates_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for job in ("../x", "a/b", "", ".."):
        with pytest.raises(ValidationError):
            await store.export(job, FILES, ["zip"])
    with pytest.raises(ValidationError):
        await store.export(JOB, [("a.py", b"1"), ("./a.py", b"2")], ["zip"])


async def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ArtifactStore(tmp_path)
    [first] = await store.export(JOB, FILES, ["zip"])
    before = Path(first["path"]).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts_mod.os, "replace", broken_replace)
    with pytest.raises(ArtifactError) as info:
        await store.export(JOB, [("other.py", b"new")], ["zip"])
    assert info.value.code == "export_failed"
    # The old archive is intact and no temporary file is left behind.
    assert Path(first["path"]).read_bytes() == before
    assert os.listdir(tmp_path / JOB) == ["project.zip"]


async def test_git_missing_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts_mod.shutil, "which", lambda name: None)
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="git is not installed") as info:
        await store.export(JOB, FILES, ["git"])
    assert info.value.code == "export_failed" and info.value.status == 500


async def test_small_projects_are_built_on_the_loop_large_ones_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    store = ArtifactStore(tmp_path)
    seen: list[bool] = []
    real = store._export_sync

    def spy(*args: object) -> list[dict]:
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_export_sync", spy)
    big = [("data.txt", os.urandom(artifacts_mod.INLINE_MAX_BYTES + 1))]
    small_rec, _tar_rec = await store.export("small", FILES, ["zip", "tar"])
    [big_rec] = await store.export("big", big, ["zip"])
    [git_rec] = await store.export("git", FILES, ["git"])
    assert seen == [True, False, False]  # git always runs its processes in a thread
    with zipfile.ZipFile(io.BytesIO(_check_record(big_rec, "zip"))) as zf:
        assert zf.read("big/data.txt") == big[0][1]
    assert _check_record(small_rec, "zip") and _check_record(git_rec, "git")
