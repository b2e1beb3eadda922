"""Logging: JSON lines for services, readable text on a terminal.

Each record carries the request id, job id and trace id of the task that logged it, when
there is one (set through the :data:`request_id`, :data:`job_id` and :data:`trace_id`
context variables, which Trio copies into child tasks).
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import sys
import time

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("atomic_request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("atomic_job_id", default=None)
# The OpenTelemetry trace a job's work belongs to (set by atomic.tracing when tracing is on).
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("atomic_trace_id", default=None)

# Request ids need to be unique, not secret: a random prefix per process and a counter
# (32 hex digits, like the uuid4 they replace, without a system call per request).
_RID_PREFIX = os.urandom(8).hex()
_rid_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):016x}"


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "job_id"):
            record.job_id = job_id.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = trace_id.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "job_id", "trace_id"):
            value = getattr(record, key, None)
            if value:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ctx)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{k}={getattr(record, k)}" for k in ("job_id", "request_id", "trace_id") if getattr(record, k, None)]
        record.ctx = f"  [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def setup(level: str = "INFO", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("hypercorn.access", "httpx", "httpcore", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level)
