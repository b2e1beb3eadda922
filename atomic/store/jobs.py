"""The jobs database: job documents in SQLite, group-committed.

SQLite is blocking, so every statement runs in a worker thread: writes on one connection
behind a ``CapacityLimiter(1)`` (one writer thread at a time, so the connection is never
shared concurrently), reads on a second, read-only connection behind its own limiter, so a
large write batch never blocks a ``GET``. The database is in WAL mode with
``synchronous=NORMAL``: a committed transaction is in the WAL file before ``COMMIT``
returns, so it survives a crash of this process (not a power cut).

Writes are group-committed. :meth:`JobStore.put` queues its row and parks; one writer task
takes everything queued, commits it in one transaction in the thread, then wakes those
callers. While a batch commits the next one gathers, so under load the batch size grows
with the commit latency and the number of fsync-like steps does not grow with the callers.
:meth:`JobStore.put_nowait` does not wait at all: its row rides along with the next batch.

Documents are the contract's :class:`~atomic.contract.JobDocument`: encoded once when
put, decoded (and so checked) when read.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import trio

from .. import config
from ..contract import JobDocument
from ..errors import StoreError, ValidationError

__all__ = ["SCHEMA_VERSION", "TERMINAL_STATES", "JobStore", "StoreError", "StoreStatistics"]

log = logging.getLogger("atomic.store")

TERMINAL_STATES = frozenset({"COMPLETE", "FAILED", "CANCELLED"})

_CURSOR = re.compile(r"[0-9]{1,15}")  # the contract's Cursor pattern
_decoder = msgspec.json.Decoder(JobDocument)


def _load(blob: bytes) -> JobDocument:
    try:
        return _decoder.decode(blob)
    except msgspec.MsgspecError as exc:
        raise StoreError(f"a stored job document does not fit the contract: {exc}") from None


@dataclass(frozen=True)
class StoreStatistics:
    """What the metrics read from a :class:`JobStore`."""

    writes: int  # job documents committed
    batches: int  # transactions that committed at least one document
    avg_batch_size: float
    db_size_bytes: int


# --- schema ---------------------------------------------------------------------------


def _schema_v1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            priority TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            seq INTEGER NOT NULL,
            doc BLOB NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX jobs_state ON jobs (state, seq)")
    conn.execute("CREATE UNIQUE INDEX jobs_seq ON jobs (seq)")
    conn.execute("CREATE INDEX jobs_finished ON jobs (finished_at)")
    conn.execute(
        """CREATE TABLE events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event BLOB NOT NULL,
            PRIMARY KEY (job_id, seq)
        ) WITHOUT ROWID"""
    )
    # (The events table is unused since stream events are not stored; schema v1 keeps it.)
    # High-water marks of the sequence numbers, so a pruned newest row is never reused.
    conn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT INTO counters VALUES ('jobs', 0), ('events', 0)")


# MIGRATIONS[v] takes a database at user_version v to v + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_schema_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the jobs database has schema version {version}; this Atomic knows up to {SCHEMA_VERSION}"
        )
    for v in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[v](conn)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


_UPSERT = """
INSERT INTO jobs (id, state, priority, created_at, updated_at, finished_at, seq, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state, priority = excluded.priority, created_at = excluded.created_at,
    updated_at = excluded.updated_at, finished_at = excluded.finished_at, doc = excluded.doc
"""
_TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATES)) + ")"


# --- values ---------------------------------------------------------------------------


def _utc_text(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _norm_time(value: str | None, name: str) -> str | None:
    """A column value for an RFC 3339 field: one fixed UTC format, so text order is time order."""
    if value is None:
        return None
    try:
        return _utc_text(datetime.fromisoformat(value))
    except ValueError:
        raise ValidationError(name, f"expected an RFC 3339 time, not {value!r}") from None


def _row(doc: JobDocument) -> tuple[str, str, str, str, str | None, bytes]:
    """A job document as the row a commit writes (id, state, priority, created_at,
    finished_at, the document itself); ValidationError names a bad field."""
    if not doc.id:
        raise ValidationError("id", "expected a non-empty string")
    return (
        doc.id,
        doc.state,
        doc.priority,
        _norm_time(doc.created_at, "created_at") or "",
        _norm_time(doc.finished_at, "finished_at"),
        msgspec.json.encode(doc),
    )


def encode_cursor(seq: int) -> str:
    """The next page starts below row ``seq`` (opaque to clients; the contract's pattern)."""
    return str(seq)


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise ValidationError("cursor", "is not a cursor this server issued")
    return int(cursor)


class _Waiter:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


# --- the store ------------------------------------------------------------------------


class JobStore:
    """Durable job documents. Start it with ``await nursery.start(store.run)``."""

    def __init__(self, path: Path | str, *, cleanup_timeout_s: float | None = None) -> None:
        self.path = Path(path)
        self._cleanup_timeout_s = (
            config.default("cleanup_timeout_s") if cleanup_timeout_s is None else cleanup_timeout_s
        )
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._wlimiter = trio.CapacityLimiter(1)
        self._rlimiter = trio.CapacityLimiter(1)
        # Rows waiting for the writer; the writer swaps these lists out whole.
        self._rows: list[tuple[str, str, str, str, str | None, bytes]] = []
        self._waiters: list[_Waiter] = []
        self._wake = trio.Event()
        self._state = "new"  # new -> running -> closed
        # Touched only by the writer thread (serialised by _wlimiter).
        self._next_seq = 0
        self._db_size = 0
        # Statistics, touched only on the Trio side.
        self._writes = 0
        self._batches = 0

    def __repr__(self) -> str:
        return (
            f"<JobStore {str(self.path)!r} {self._state} pending={len(self._rows)} "
            f"writes={self._writes} batches={self._batches}>"
        )

    # --- service ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open (creating and migrating) the database, report ready, then write until
        cancelled; on the way out flush what is pending and close, bounded and shielded."""
        if self._state != "new":
            raise RuntimeError("a JobStore runs once")
        try:
            await trio.to_thread.run_sync(self._open_sync, limiter=self._wlimiter)
            self._state = "running"
            task_status.started()
            await self._write_loop()
        finally:
            self._state = "closed"
            with trio.move_on_after(self._cleanup_timeout_s, shield=True):
                while self._waiters or self._rows:
                    await self._commit_pending()
            self._fail_waiters(StoreError("the jobs database closed before this write"))
            with trio.move_on_after(self._cleanup_timeout_s, shield=True):
                await trio.to_thread.run_sync(self._close_sync, "_rconn", limiter=self._rlimiter)
                await trio.to_thread.run_sync(self._close_sync, "_wconn", limiter=self._wlimiter)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._commit_pending()

    async def _commit_pending(self) -> None:
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        error: BaseException | None = None
        try:
            await trio.to_thread.run_sync(self._commit_sync, rows, limiter=self._wlimiter)
        except StoreError as exc:
            error = exc
            log.error("jobs database write failed (%d documents): %s", len(rows), exc)
        else:
            if rows:
                self._writes += len(rows)
                self._batches += 1
        for w in waiters:
            w.error = error
            w.done.set()

    def _fail_waiters(self, error: BaseException) -> None:
        for w in self._waiters:
            w.error = error
            w.done.set()
        self._waiters = []
        self._rows = []

    # --- writing ---------------------------------------------------------------------

    async def put(self, doc: JobDocument) -> None:
        """Insert or replace the whole job document; it is committed when this returns.

        ``created_at`` and ``finished_at`` must be RFC 3339 times (ValidationError names
        the field). A put cancelled while waiting may still be committed.
        """
        row = _row(doc)
        self._check_running()
        waiter = _Waiter()
        self._rows.append(row)
        self._waiters.append(waiter)
        self._wake.set()
        await self._wait(waiter)

    def put_nowait(self, doc: JobDocument) -> None:
        """Queue the whole job document for the next group commit; never waits.

        For progress a crash may lose (the job is recovered from its last committed
        state): the caller does not wait for the commit it would not act on.
        """
        row = _row(doc)
        self._check_running()
        self._rows.append(row)
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything put before this call is committed."""
        self._check_running()
        waiter = _Waiter()
        self._waiters.append(waiter)
        self._wake.set()
        await self._wait(waiter)

    async def prune(self, older_than_s: float, now: datetime | None = None) -> list[str]:
        """Delete finished jobs that finished more than ``older_than_s`` seconds before
        ``now``; returns their ids so their artifacts can go too."""
        now = datetime.now(UTC) if now is None else now
        cutoff = _utc_text(now - timedelta(seconds=older_than_s))
        await self.flush()
        return await trio.to_thread.run_sync(self._prune_sync, cutoff, limiter=self._wlimiter)

    # --- reading ---------------------------------------------------------------------

    async def get(self, job_id: str) -> JobDocument | None:
        rows = await self._read("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return _load(rows[0][0]) if rows else None

    async def page(
        self, state: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[JobDocument], str | None]:
        """Newest first, at most ``limit``; the cursor (opaque) continues where this page ended."""
        if limit < 1:
            raise ValidationError("limit", "expected a whole number above 0")
        before = decode_cursor(cursor) if cursor is not None else None
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        sql = "SELECT seq, doc FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = await self._read(sql, (*args, limit + 1))
        docs = [_load(doc) for _, doc in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return docs, next_cursor

    async def unfinished(self) -> list[JobDocument]:
        """Jobs not in a terminal state, oldest first: what a restart must resume."""
        rows = await self._read(f"SELECT doc FROM jobs WHERE state NOT IN {_TERMINAL_SQL} ORDER BY seq")
        return [_load(doc) for (doc,) in rows]

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            writes=self._writes,
            batches=self._batches,
            avg_batch_size=self._writes / self._batches if self._batches else 0.0,
            db_size_bytes=self._db_size,
        )

    # --- plumbing --------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != "running":
            raise StoreError(f"the jobs database is {'closed' if self._state == 'closed' else 'not open yet'}")

    async def _wait(self, waiter: _Waiter) -> None:
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    async def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        self._check_running()
        return await trio.to_thread.run_sync(self._read_sync, sql, args, limiter=self._rlimiter)

    # --- in the worker thread --------------------------------------------------------

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA busy_timeout = 5000")
                _migrate(conn)
                counters = dict(conn.execute("SELECT name, value FROM counters"))
                self._next_seq = counters["jobs"]
                self._db_size = self._size_sync(conn)
                uri = self.path.resolve().as_uri() + "?mode=ro"
                rconn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                rconn.execute("PRAGMA busy_timeout = 5000")
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the jobs database {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create the jobs database {self.path}: {exc}") from None
        self._wconn, self._rconn = conn, rconn

    def _close_sync(self, attr: str) -> None:
        conn = getattr(self, attr)
        setattr(self, attr, None)
        if conn is not None:
            conn.close()

    @staticmethod
    def _size_sync(conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * size)

    def _commit_sync(self, rows: list[tuple[str, str, str, str, str | None, bytes]]) -> None:
        if not rows:
            return
        conn = self._wconn
        assert conn is not None
        now = _utc_text(datetime.now(UTC))
        seq = self._next_seq
        job_rows = []
        for id_, state, prio, created, finished, blob in rows:
            seq += 1
            job_rows.append((id_, state, prio, created, now, finished, seq, blob))
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, job_rows)
                conn.execute("UPDATE counters SET value = ? WHERE name = 'jobs'", (seq,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._next_seq = seq
            self._db_size = self._size_sync(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"the jobs database could not be written: {exc}") from None

    def _prune_sync(self, cutoff: str) -> list[str]:
        conn = self._wconn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM jobs WHERE finished_at < ? "
                        f"AND state IN {_TERMINAL_SQL} ORDER BY seq",
                        (cutoff,),
                    )
                ]
                conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._db_size = self._size_sync(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"the jobs database could not be pruned: {exc}") from None
        return ids

    def _read_sync(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        conn = self._rconn
        if conn is None:
            raise StoreError("the jobs database is closed")
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the jobs database could not be read: {exc}") from None
