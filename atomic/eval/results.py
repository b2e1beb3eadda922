"""The results file of a run: ``results.jsonl``, one JSON line per task, appended and
fsync'd as each task finishes, so a run stopped at any moment (Ctrl-C, ``kill -9``, a
power cut) keeps every task it had finished. A restart reads what is there, skips those
tasks and appends the rest; a line cut short by the stop is dropped first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class ResultsFile:
    """``DIR/results.jsonl``: load what a previous run finished, append what this one does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}  # task_id -> its latest record
        self.dropped = 0  # lines that could not be read (a cut-short last line)
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<ResultsFile {self.path} records={len(self.records)}>"

    def open(self) -> None:
        """Read what is there (cutting a partial last line off) and open for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                # A line being written when the run was killed: drop it, never append after it.
                self.dropped += 1
                with self.path.open("r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
                data = data[:end]
            for line in data.splitlines():
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    self.dropped += 1
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("task_id"), str):
                    self.records[rec["task_id"]] = rec
                else:
                    self.dropped += 1
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        """One line, written whole and flushed to disk before this returns."""
        assert self._fd is not None, "open() first"
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.records[record["task_id"]] = record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def done(self, task_id: str, *, retry_errors: bool = False) -> bool:
        """Whether the task needs no new run."""
        rec = self.records.get(task_id)
        if rec is None:
            return False
        return not (retry_errors and rec.get("error") is not None and not rec.get("samples"))


def write_json_atomically(path: Path, doc: Any) -> None:
    """Write to a temp file beside it, fsync, then rename: never a half-written summary."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
