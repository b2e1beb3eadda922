import io
import json
import logging

import pytest

from atomic import logs


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_request_and_job_ids():
    stream = io.StringIO()
    logs.setup("INFO", "json", stream)
    log = logging.getLogger("atomic.test")
    t1 = logs.request_id.set("req-1")
    t2 = logs.job_id.set("job-9")
    try:
        log.info("hello %s", "world")
        log.debug("hidden at INFO")
    finally:
        logs.job_id.reset(t2)
        logs.request_id.reset(t1)
    log.warning("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["msg"] == "hello world" and lines[0]["request_id"] == "req-1" and lines[0]["job_id"] == "job-9"
    assert lines[0]["level"] == "INFO" and lines[0]["ts"].endswith("Z")
    assert "request_id" not in lines[1] and lines[1]["level"] == "WARNING"


def test_text_format_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    logs.setup("INFO", "auto", stream)
    token = logs.job_id.set("j1")
    try:
        logging.getLogger("atomic.test").info("stage done")
    finally:
        logs.job_id.reset(token)
    out = stream.getvalue()
    assert "INFO" in out and "atomic.test: stage done" in out and "[job_id=j1]" in out
    assert not out.lstrip().startswith("{")


def test_request_ids_are_unique_32_hex_digits() -> None:
    from atomic.logs import new_request_id

    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len({i[:16] for i in ids}) == 1  # one process, one prefix
