"""One trace per job on a live server (real pipeline, agent over its socket, Docker sandbox),
its spans caught by OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import itertools

from atomic import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
ANSWER = "```python\nprint('squares', [n * n for n in range(1, 4)])\n```\n"
STAGES = ["PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING"]


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.setup("atomic", exporter=exporter)
    yield exporter
    tracing.shutdown()


def by_name(finished, name):
    return [s for s in finished if s.name == name]


async def test_a_job_is_one_trace_under_the_callers_traceparent(spans, make_server):
    server = await make_server(ANSWER)
    r = await server.client.post("/api/generate", json={"prompt": "squares", "wait": True,
                                                        "limits": {"timeout_s": 5, "memory_mb": 128}},
                                 headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    doc = r.json()
    assert r.status_code == 200 and doc["state"] == "COMPLETE", doc
    assert doc["trace_id"] == TRACE
    assert (await server.client.get(f"/api/jobs/{doc['id']}")).json()["trace_id"] == TRACE  # stored too

    finished = spans.get_finished_spans()
    assert {s.context.trace_id for s in finished} == {int(TRACE, 16)}
    (root,) = by_name(finished, "job")
    assert root.parent.span_id == int(PARENT, 16) and root.kind == SpanKind.SERVER
    assert root.attributes["atomic.state"] == "COMPLETE" and root.attributes["atomic.job.id"] == doc["id"]

    stages = {s.attributes["atomic.stage"]: s for s in finished if s.name.startswith("stage ")}
    assert sorted(stages) == sorted(STAGES)
    for s in stages.values():
        assert s.parent.span_id == root.context.span_id
        assert s.attributes["atomic.job.id"] == doc["id"] and s.attributes["atomic.language"] == "python"
    # What a stage knows when it ends: the model once generated, the verdict once run.
    assert stages["GENERATING"].attributes["atomic.provider"] == "replay"
    assert stages["GENERATING"].attributes["atomic.model"] == "replay-1"
    assert "atomic.verdict" not in stages["GENERATING"].attributes
    assert stages["EXECUTING"].attributes["atomic.verdict"] == "accepted"
    ordered = sorted(stages.values(), key=lambda s: s.start_time)
    assert [s.attributes["atomic.stage"] for s in ordered] == STAGES
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(ordered))

    # The agent: the pool's client span under GENERATING, the agent's own span under that.
    client = next(s for s in by_name(finished, "agent.generate") if s.kind == SpanKind.CLIENT)
    agent = next(s for s in by_name(finished, "agent.generate") if s.kind == SpanKind.SERVER)
    assert client.parent.span_id == stages["GENERATING"].context.span_id
    assert agent.parent.span_id == client.context.span_id
    assert agent.attributes["atomic.provider"] == "replay"
    assert agent.attributes["gen_ai.usage.output_tokens"] > 0

    # The sandbox run under EXECUTING, with its limits and how it ended.
    (run,) = by_name(finished, "sandbox.run")
    assert run.parent.span_id == stages["EXECUTING"].context.span_id
    assert run.attributes["atomic.limits.timeout_s"] == 5.0
    assert run.attributes["atomic.limits.memory_mb"] == 128
    assert run.attributes["atomic.termination"] == "exited" and run.attributes["atomic.exit_code"] == 0
    assert run.attributes["atomic.verdict"] == "accepted"


async def test_a_malformed_traceparent_is_ignored(spans, make_server):
    server = await make_server(ANSWER)
    r = await server.client.post("/api/generate", json={"prompt": "p", "execute": False},
                                 headers={"traceparent": "00-not-a-trace-01"})
    assert r.status_code == 202, r.text
    trace_id = r.json()["trace_id"]
    assert len(trace_id) == 32 and int(trace_id, 16) and trace_id != TRACE
    doc = await server.wait_terminal(r.json()["id"])
    assert doc["state"] == "COMPLETE" and doc["trace_id"] == trace_id
    (root,) = by_name(spans.get_finished_spans(), "job")
    assert root.parent is None


async def test_a_failed_job_marks_its_span(spans, make_server):
    server = await make_server("no code at all")
    r = await server.client.post("/api/generate", json={"prompt": "p", "wait": True})
    assert r.json()["state"] == "FAILED"
    (root,) = by_name(spans.get_finished_spans(), "job")
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["atomic.error.code"] == "no_code"


async def test_an_execute_run_is_a_span_with_its_limits(spans, make_server):
    server = await make_server(ANSWER)
    r = await server.client.post("/api/execute", json={
        "language": "python", "files": [{"path": "main.py", "content": "import sys; sys.exit(3)"}],
        "entrypoint": "main.py", "limits": {"timeout_s": 4, "pids": 16}})
    assert r.status_code == 200 and r.json()["exit_code"] == 3
    (run,) = by_name(spans.get_finished_spans(), "sandbox.run")
    assert run.attributes["atomic.limits.timeout_s"] == 4.0 and run.attributes["atomic.limits.pids"] == 16
    assert run.attributes["atomic.termination"] == "exited" and run.attributes["atomic.exit_code"] == 3


async def test_a_websocket_start_honours_its_traceparent(spans, make_server):
    import json

    from trio_websocket import open_websocket_url

    server = await make_server(ANSWER)
    headers = [(b"traceparent", f"00-{TRACE}-{PARENT}-01".encode())]
    async with open_websocket_url(server.ws_url, extra_headers=headers) as ws:
        await ws.send_message(json.dumps({"prompt": "p", "execute": False}))
        accepted = json.loads(await ws.get_message())
        while json.loads(await ws.get_message())["type"] != "done":
            pass
    assert accepted["type"] == "accepted" and accepted["job"]["trace_id"] == TRACE
    (root,) = by_name(spans.get_finished_spans(), "job")
    assert root.parent.span_id == int(PARENT, 16)
