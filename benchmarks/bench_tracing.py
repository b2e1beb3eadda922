#!/usr/bin/env python
"""What tracing costs a job, in process: the spans of one job's life (root, five stages,
the agent client span, a sandbox run) made and ended as the server makes them, tracing
off (the hooks' None checks) against on (the SDK's BatchSpanProcessor, an exporter that
drops what it gets: the export itself runs on the SDK's thread). Also the W3C
traceparent parse, and the accept path's share (the root span alone).

    python benchmarks/bench_tracing.py [--quick] [--json PATH]

Run by run, off and on alternate; the table shows medians of per-job microseconds.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from atomic import tracing

STAGES = ("PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING", "COMPLETE")
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _job() -> SimpleNamespace:
    usage = SimpleNamespace(provider="replay", model="replay-1")
    execution = SimpleNamespace(verdict="accepted")
    return SimpleNamespace(id="0" * 32, request=SimpleNamespace(language="python"), usage=usage,
                           execution=execution, error=None)


def one_job(job: SimpleNamespace) -> None:
    """A job's tracing work as the server does it (the hooks are None checks when off)."""
    trace = tracing.start_job(job, TP) if tracing.enabled() else None
    with tracing.job_scope(trace):
        for state in STAGES:
            if trace is not None:
                trace.enter(state, job)
            if state == "GENERATING" and trace is not None and tracing._tracer is not None:
                span = tracing._tracer.start_span("agent.generate", context=trace.parent())
                tracing.traceparent(span)
                span.end()
            if state == "EXECUTING" and trace is not None and tracing._tracer is not None:
                span = tracing._tracer.start_span("sandbox.run", context=trace.parent())
                span.set_attributes({"atomic.limits.timeout_s": 10.0, "atomic.termination": "exited"})
                span.end()


def accept(job: SimpleNamespace) -> None:
    if tracing.enabled():
        tracing.start_job(job, TP)


def per_call_us(fn, arg, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - t0) / n * 1e6


class Drop:
    """A span exporter that drops everything (what an exporter costs is its thread's)."""

    def export(self, spans: Sequence) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    n = 2000 if args.quick else 20000
    runs = 3 if args.quick else 7
    job = _job()
    results: dict[str, list[float]] = {"job off": [], "job on": [], "accept off": [], "accept on": []}
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    for _ in range(runs):
        results["job off"].append(per_call_us(one_job, job, n))
        results["accept off"].append(per_call_us(accept, job, n))
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=1 << 16))  # type: ignore[arg-type]
        tracing._provider, tracing._tracer = provider, provider.get_tracer("atomic")
        results["job on"].append(per_call_us(one_job, job, n))
        results["accept on"].append(per_call_us(accept, job, n))
        tracing.shutdown()
    parse = per_call_us(tracing.parse_traceparent, TP, n * 5)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'per job (9 spans)':28} off {med['job off']:8.2f} us   on {med['job on']:8.2f} us   "
          f"cost {med['job on'] - med['job off']:8.2f} us")
    print(f"{'per accept (the root span)':28} off {med['accept off']:8.2f} us   on {med['accept on']:8.2f} us   "
          f"cost {med['accept on'] - med['accept off']:8.2f} us")
    print(f"{'traceparent parse':28} {parse:8.2f} us")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"median_us": med, "runs_us": results,
                                                       "traceparent_parse_us": parse}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
