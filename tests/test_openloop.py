"""The benchmark harness's fixed-rate client (``benchmarks/openloop.c``) against a real
HTTP/1.1 server on 127.0.0.1: it sends exactly rate x duration requests, reads both
Content-Length and chunked answers on keep-alive connections, and counts statuses.
Correctness only; its figures are the harness's business."""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harness import loadgen


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        # Each answer in one write: headers and body in two would meet Nagle and the
        # client's delayed ACK (40 ms a request), and measure TCP instead of the client.
        if self.path == "/chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b'{"a":', b"1}")) + b"0\r\n\r\n"
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
            return
        status = b"404 Not Found" if self.path == "/missing" else b"200 OK"
        body = b'{"status":"ok"}'
        self.wfile.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("path", ["/health", "/chunked"])
def test_sends_the_schedule_and_reads_every_answer(server: int, path: str) -> None:
    r = loadgen.open_loop(f"http://127.0.0.1:{server}{path}", rate=200, duration=1.0, connections=4)
    assert r["tool"] == "openloop"
    assert r["sent"] == 200 and r["requests"] == 200 and r["errors"] == 0
    assert r["status"] == {"200": 200} and r["ok"] == 200
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] < 1000
    assert 0.8 < r["duration_s"] < 3  # the schedule spans the duration, not a burst
    assert r["send_late_ms"]["p50"] >= 0


def test_counts_statuses_other_than_200(server: int) -> None:
    r = loadgen.open_loop(f"http://127.0.0.1:{server}/missing", rate=50, duration=0.5, connections=2)
    assert r["status"] == {"404": 25} and r["ok"] == 0 and r["ok_rps"] == 0


def test_refuses_a_host_other_than_loopback() -> None:
    exe = loadgen.openloop_path()
    assert exe is not None  # setup.sh installs build-essential
    import subprocess

    res = subprocess.run([exe, "10.0.0.1", "80", "/", "1", "1", "1"], capture_output=True, text=True, timeout=10)
    assert res.returncode == 2 and "loopback" in res.stderr
