"""Traces leave both processes over OTLP/HTTP and meet in one trace: ``atomic serve`` as a
process, the agent its supervised child, both told by the standard OTEL_* variables to
export to a receiver of this test's own on 127.0.0.1, which decodes each export request
with the opentelemetry-proto package."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ROOT = Path(__file__).resolve().parents[1]
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf in, spans kept by service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []  # (service.name, Span)
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = self.path == "/v1/traces" and self.headers.get("Content-Type") == "application/x-protobuf"
                if ok:
                    receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.lock = threading.Lock()

    def take(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            self.requests += 1
            for rs in request.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((service, span))

    def named(self, name: str) -> list[tuple[str, object]]:
        with self.lock:
            return [(svc, s) for svc, s in self.spans if s.name == name]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value or v.int_value or v.double_value or v.bool_value
    return out


@pytest.mark.slow
def test_the_agents_span_shares_the_jobs_trace(tmp_path, docker_client):
    port = _free_port()
    sock_dir = tempfile.mkdtemp(prefix="atomic-otlp")
    with Receiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ATOMIC_", "OTEL_"))}
        env.update({
            "PYTHONPATH": str(ROOT),
            "ATOMIC_HTTP_PORT": str(port),
            "ATOMIC_DATA_DIR": str(tmp_path / "data"),
            "ATOMIC_IPC_SOCKET": f"{sock_dir}/agent.sock",
            "ATOMIC_PROVIDER": "replay",
            "ATOMIC_WARM_POOL_SIZE": "0",
            "ATOMIC_LOG_FORMAT": "json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        })
        log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - the server writes it while it runs
        proc = subprocess.Popen([sys.executable, "-m", "atomic", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    st = httpx.get(url + "/api/status", timeout=2).json()
                    if st["agent"]["healthy"] and st["sandbox"]["available"]:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.2)
            r = httpx.post(url + "/api/generate", json={"prompt": "squares", "execute": False, "wait": True},
                           headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}, timeout=60)
            doc = r.json()
            assert r.status_code == 200 and doc["state"] == "COMPLETE", doc
            assert doc["trace_id"] == TRACE
            deadline = time.monotonic() + 20
            while not (receiver.named("job") and len(receiver.named("agent.generate")) >= 2):
                assert time.monotonic() < deadline, f"spans so far: {[s.name for _, s in receiver.spans]}"
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    (service, job), = receiver.named("job")
    assert service == "atomic" and job.trace_id.hex() == TRACE and job.parent_span_id.hex() == PARENT
    assert _attrs(job)["atomic.job.id"] == doc["id"]
    by_service = {svc: span for svc, span in receiver.named("agent.generate")}
    assert set(by_service) == {"atomic", "atomic-agent"}
    client, agent = by_service["atomic"], by_service["atomic-agent"]
    # The agent's span, made in the other process, is in the job's trace, under the pool's span.
    assert agent.trace_id.hex() == TRACE == client.trace_id.hex()
    assert agent.parent_span_id == client.span_id
    (_, generating), = [(s, x) for s, x in receiver.named("stage GENERATING")]
    assert client.parent_span_id == generating.span_id and generating.parent_span_id == job.span_id
    assert _attrs(agent)["atomic.provider"] == "replay"
