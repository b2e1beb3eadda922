"""Tracing's pure parts: when it is on, the W3C traceparent parser, the trace id in log
lines, and that nothing of OpenTelemetry is imported while it is off."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from atomic import logs, tracing
from atomic.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "x"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_on_only_when_the_otel_variables_ask(env, on):
    assert tracing.wanted(env) is on


def test_values_it_cannot_follow_stop_start_up():
    assert tracing.problems({"OTEL_TRACES_EXPORTER": "otlp,console"}) == []
    assert tracing.problems({"OTEL_TRACES_EXPORTER": "zipkin"}) == [
        "OTEL_TRACES_EXPORTER='zipkin': expected otlp, console or none"]
    assert tracing.problems({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == [
        "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': expected http/protobuf (Atomic exports OTLP over HTTP)"]
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='jaeger'"):
        tracing.setup("atomic", {"OTEL_TRACES_EXPORTER": "jaeger"})
    assert not tracing.enabled()


def test_cli_exits_2_on_such_a_value(monkeypatch, capsys, keep_logging):
    from atomic.cli import main

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert main(["agent", "--agent-tcp", "127.0.0.1:1", "--provider", "replay"]) == 2
    assert capsys.readouterr().err.strip() == (
        "atomic: configuration: OTEL_TRACES_EXPORTER='zipkin': expected otlp, console or none")


@pytest.mark.parametrize(("value", "parsed"), [
    (f"00-{TRACE}-{PARENT}-01", (int(TRACE, 16), int(PARENT, 16), 1)),
    (f"00-{TRACE}-{PARENT}-00", (int(TRACE, 16), int(PARENT, 16), 0)),
    (f"  00-{TRACE}-{PARENT}-01 ", (int(TRACE, 16), int(PARENT, 16), 1)),
    (f"01-{TRACE}-{PARENT}-01-what-the-future-adds", (int(TRACE, 16), int(PARENT, 16), 1)),
    (f"00-{TRACE}-{PARENT}-01".encode(), (int(TRACE, 16), int(PARENT, 16), 1)),
])
def test_well_formed_traceparents(value, parsed):
    assert tracing.parse_traceparent(value) == parsed


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-{'0' * 16}-01",
    f"00-{TRACE.upper()}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01-extra", f"00-{TRACE[:-1]}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-1", f"00_{TRACE}_{PARENT}_01", "00-" + "é" * 32 + f"-{PARENT}-01", b"\xff\xfe",
])
def test_malformed_traceparents_are_none(value):
    assert tracing.parse_traceparent(value) is None


def test_job_log_lines_carry_the_trace_id():
    exporter = InMemorySpanExporter()
    tracing.setup("atomic", exporter=exporter)
    try:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logs.JSONFormatter())
        handler.addFilter(logs._ContextFilter())
        logger = logging.getLogger("atomic.test.tracing")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

        class FakeJob:
            id = "j1"
            request = type("R", (), {"language": "python"})()
            usage = execution = error = None

        trace = tracing.start_job(FakeJob(), f"00-{TRACE}-{PARENT}-01")
        assert trace is not None and trace.trace_id == TRACE
        with tracing.job_scope(trace):
            logger.info("inside")
        logger.info("outside")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert lines[0]["trace_id"] == TRACE and "trace_id" not in lines[1]
        trace.enter("CANCELLED", FakeJob())
        (root,) = exporter.get_finished_spans()
        assert root.name == "job" and root.parent.span_id == int(PARENT, 16) and root.parent.is_remote
        logger.removeHandler(handler)
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_off_nothing_of_opentelemetry_is_imported():
    """A server and an agent started with no OTEL_* variable serve a job without importing
    the SDK (or even the API): tracing off costs an import-free None check."""
    code = r"""
import sys, tempfile, trio
from functools import partial
from atomic import config, tracing
from atomic.agent.providers.replay import ReplayProvider
from atomic.agent.server import serve_agent
from atomic.metrics import Metrics
from atomic.server.serve import serve
from atomic.server.state import Runtime
import httpx

async def main():
    d = tempfile.mkdtemp(prefix="atomic-t")
    s = config.load(env={}, overrides={"data_dir": d + "/data", "ipc_socket": d + "/a.sock", "http_port": 0,
                                       "agent": "external", "provider": "replay", "warm_pool_size": 0,
                                       "docker_host": "unix://" + d + "/none.sock"})
    assert not tracing.setup("atomic")
    async with trio.open_nursery() as n:
        await n.start(partial(serve_agent, s, providers={"replay": ReplayProvider("x")}))
        rt = Runtime(settings=s, metrics=Metrics())
        urls = await n.start(partial(serve, s, handle_signals=False, runtime=rt))
        async with httpx.AsyncClient(base_url=urls[0]) as c:
            r = await c.post("/api/generate", json={"prompt": "p", "execute": False},
                             headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
            assert r.status_code in (202, 422), r.text
            assert r.json().get("trace_id") is None
        rt.shutdown.set()
        n.cancel_scope.cancel()
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    print("LOADED", loaded)

trio.run(main)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ATOMIC_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED []" in out.stdout, out.stdout


async def test_a_reported_compile_is_a_child_span_of_its_run():
    """The sandbox (a stand-in of its Protocol here: a compiled language's result) reports
    the compile it timed; the run's span gets it as a child, placed at the run's start."""
    from types import SimpleNamespace

    from atomic.sandbox import RunSpec
    from atomic.sandbox.limits import Limits

    class CompiledRuns:
        async def execute(self, spec, on_output=None):
            step = SimpleNamespace(termination="exited", exit_code=1, duration_ms=250.0)
            return SimpleNamespace(termination="exited", exit_code=1, duration_ms=0.0, verdict="compile_error",
                                   compile=step)

    exporter = InMemorySpanExporter()
    tracing.setup("atomic", exporter=exporter)
    try:
        sandbox = tracing.traced_sandbox(CompiledRuns())
        limits = Limits(timeout_s=3.0, memory_mb=64, cpus=1.0, pids=32)
        await sandbox.execute(RunSpec(files=[], command=["cc"], limits=limits))
    finally:
        tracing.shutdown()
    run, compile_ = sorted(exporter.get_finished_spans(), key=lambda s: s.name, reverse=True)
    assert (run.name, compile_.name) == ("sandbox.run", "sandbox.compile")
    assert run.attributes["atomic.verdict"] == "compile_error" and run.attributes["atomic.limits.pids"] == 32
    assert compile_.parent.span_id == run.context.span_id and compile_.start_time == run.start_time
    assert compile_.end_time - compile_.start_time == 250_000_000
    assert compile_.attributes["atomic.exit_code"] == 1 and "atomic.verdict" not in compile_.attributes
