"""The jobs database: real SQLite files in a temporary folder, real worker threads.

These tests run on the real clock: SQLite work happens in threads, and a virtual clock would
jump over the writer's batching window while a thread is busy.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from atomic.contract import JobDocument
from atomic.errors import ValidationError
from atomic.store import JobStore, StoreError, StoreStatistics
from atomic.store.jobs import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[JobStore]:
    store = JobStore(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        yield store
        nursery.cancel_scope.cancel()


def doc(i: int, state: str = "QUEUED", finished_at: str | None = None, **extra: Any) -> JobDocument:
    return msgspec.convert({
        "id": f"job-{i:04d}",
        "state": state,
        "priority": "normal",
        "created_at": f"2025-01-01T00:00:{i % 60:02d}Z",
        "finished_at": finished_at,
        "request": {"prompt": f"prompt {i}"},
        **extra,
    }, JobDocument)


async def test_put_get_and_upsert(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        assert await store.get("nope") is None
        await store.put(doc(1))
        await store.put(doc(2))
        assert await store.get("job-0001") == doc(1)
        await store.put(doc(1, state="COMPLETE", finished_at="2025-01-02T00:00:00+00:00", progress=1.0))
        got = await store.get("job-0001")
        assert got is not None and got.state == "COMPLETE" and got.progress == 1.0
        jobs, _ = await store.page(limit=10)
        assert [j.id for j in jobs] == ["job-0002", "job-0001"]  # an update keeps its place


async def test_put_validates_document(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        with pytest.raises(ValidationError) as info:
            await store.put(msgspec.structs.replace(doc(1), created_at="soon"))
        assert info.value.field == "created_at"
        with pytest.raises(ValidationError) as info:
            await store.put(doc(1, finished_at="yesterday"))
        assert info.value.field == "finished_at"
        with pytest.raises(ValidationError) as info:
            await store.put(msgspec.structs.replace(doc(2), id=""))
        assert info.value.field == "id"
        assert await store.get("job-0001") is None  # nothing refused was written


async def test_list_pagination_newest_first(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        for i in range(25):
            await store.put(doc(i, state="COMPLETE" if i % 2 else "QUEUED"))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            jobs, cursor = await store.page(limit=10, cursor=cursor)
            seen += [j.id for j in jobs]
            pages += 1
            if cursor is None:
                break
        assert pages == 3
        assert seen == [f"job-{i:04d}" for i in reversed(range(25))]

        done, cursor = await store.page(state="COMPLETE", limit=5)
        more, end = await store.page(state="COMPLETE", limit=100, cursor=cursor)
        assert end is None
        assert [j.id for j in done + more] == [f"job-{i:04d}" for i in reversed(range(1, 25, 2))]

        exact, cursor = await store.page(limit=25)
        assert len(exact) == 25 and cursor is None  # a full last page has no next cursor

        for bad in ("garbage!", "", "am9iczox", "-1", "1" * 16):
            with pytest.raises(ValidationError) as info:
                await store.page(cursor=bad)
            assert info.value.field == "cursor"
        with pytest.raises(ValidationError):
            await store.page(limit=0)


async def test_concurrent_puts_group_commit(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(store.put, doc(i))
        stats = store.statistics()
        assert stats.writes == 300
        assert stats.batches < 300 / 5, stats
        assert stats.avg_batch_size == 300 / stats.batches
        jobs, _ = await store.page(limit=1000)
        assert len(jobs) == 300


async def test_durable_across_reopen_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with open_store(path) as store:
        await store.put(doc(7))
    async with open_store(path) as store:
        assert await store.get("job-0007") == doc(7)
        await store.put(doc(8))  # sequence numbers continue after a reopen
        jobs, _ = await store.page(limit=10)
        assert [j.id for j in jobs] == ["job-0008", "job-0007"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_put_survives_a_process_crash(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    script = textwrap.dedent(
        """
        import os, sys, trio
        from atomic.contract import JobDocument, JobSpec
        from atomic.store import JobStore

        async def main():
            store = JobStore(sys.argv[1])
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                await store.put(JobDocument(id="crash-1", state="QUEUED", priority="high",
                                            created_at="2025-01-01T00:00:00Z", request=JobSpec(prompt="p")))
                os._exit(9)  # no cleanup, no close, no checkpoint

        trio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await trio.run_process([sys.executable, "-c", script, str(path)], env=env, check=False)
    assert proc.returncode == 9
    async with open_store(path) as store:
        job = await store.get("crash-1")
        assert job is not None and job.priority == "high"
        assert [j.id for j in await store.unfinished()] == ["crash-1"]


async def test_unfinished_oldest_first(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        states = ["QUEUED", "COMPLETE", "GENERATING", "FAILED", "EXECUTING", "CANCELLED", "QUEUED"]
        for i, state in enumerate(states):
            await store.put(doc(i, state=state))
        assert [j.id for j in await store.unfinished()] == ["job-0000", "job-0002", "job-0004", "job-0006"]


async def test_closed_store_refuses_puts(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        await store.put(doc(1))
    with pytest.raises(StoreError):
        await store.put(doc(2))
    with pytest.raises(StoreError):
        store.put_nowait(doc(2))


async def test_prune(tmp_path: Path) -> None:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    async with open_store(tmp_path / "jobs.db") as store:
        await store.put(doc(1, "COMPLETE", "2025-01-01T00:00:00Z"))  # old
        await store.put(doc(2, "FAILED", "2025-02-27T23:00:00+01:00"))  # 2025-02-27T22:00Z: old
        await store.put(doc(3, "CANCELLED", "2025-02-28T12:00:00Z"))  # 12 h: kept
        await store.put(doc(4, "QUEUED"))  # unfinished: kept
        pruned = await store.prune(older_than_s=86400, now=now)
        assert pruned == ["job-0001", "job-0002"]
        assert await store.get("job-0001") is None and await store.get("job-0002") is None
        jobs, _ = await store.page(limit=10)
        assert [j.id for j in jobs] == ["job-0004", "job-0003"]
        assert await store.prune(older_than_s=86400, now=now) == []


async def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    store = JobStore(path)
    with pytest.raises(StoreError, match="schema version 99"):
        await store.run()  # fails before it reports ready


async def test_statistics_and_repr(tmp_path: Path) -> None:
    async with open_store(tmp_path / "jobs.db") as store:
        await store.put(doc(1))
        stats = store.statistics()
        assert isinstance(stats, StoreStatistics)
        assert (stats.writes, stats.batches, stats.avg_batch_size) == (1, 1, 1.0)
        assert stats.db_size_bytes > 0
        with pytest.raises(AttributeError):
            stats.writes = 3  # type: ignore[misc]
        assert "running" in repr(store) and "writes=1" in repr(store)
