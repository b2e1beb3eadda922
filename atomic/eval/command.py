"""``atomic eval FILE ...``: read the tasks, run what is not yet recorded, summarise.

Exit status: 0 when every task was judged, 1 when some task ended in an error (its line
in results.jsonl says which), 2 for a bad command line or file, 130 when interrupted
(Ctrl-C or SIGTERM: jobs in flight are cancelled on the server; a rerun resumes).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from .chart import pass_at_k_svg
from .formats import Task, read_tasks
from .report import Progress, summarize, table
from .results import ResultsFile, write_json_atomically
from .runner import EvalOptions, Runner, RunState, now_iso

# What must match for a rerun to resume a run (else the pass@k would mix two runs).
RUN_KEYS = ("samples", "repairs", "temperature", "seed", "provider", "model")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``atomic eval`` beside the connection's (``--url``, ``--api-key``, ``--ca``:
    ``atomic.cli.add_connection_args``); --concurrency and --job-timeout default to settings."""
    p.add_argument("file", help="tasks: JSONL or .jsonl.gz in HumanEval, MBPP or Atomic form")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="candidates per task (1..8)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N tasks")
    p.add_argument("--language", metavar="L", help="only tasks in language L (tasks that name none take L)")
    p.add_argument("--provider", metavar="P")
    p.add_argument("--model", metavar="M")
    p.add_argument("--concurrency", type=int, metavar="C", help="tasks in flight at once (ATOMIC_EVAL_CONCURRENCY)")
    p.add_argument("--out", metavar="DIR", help="results folder (default: ./atomic-eval-<file name>)")
    p.add_argument("--repairs", type=int, default=0, metavar="N", help="repair attempts per candidate (default 0)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0.8 when K > 1)")
    p.add_argument("--seed", type=int, help="sampling seed; sample i uses seed + i")
    p.add_argument("--priority", default="normal", choices=("low", "normal", "high"))
    p.add_argument("--job-timeout", type=float, metavar="S",
                   help="a job still running after S seconds is cancelled and recorded as an error")
    p.add_argument("--retry-errors", action="store_true", help="on resume, run again the tasks that ended in an error")


def _fail(msg: str) -> int:
    print(f"atomic eval: {msg}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.samples <= 8:
        return _fail(f"--samples {args.samples}: expected 1..8")
    if args.concurrency < 1:
        return _fail("--concurrency: expected at least 1")
    if args.limit is not None and args.limit < 1:
        return _fail("--limit: expected at least 1")
    if args.repairs < 0:
        return _fail("--repairs: expected 0 or more")
    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    try:
        tasks, bad = read_tasks(path, default_language=args.language or "python")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        return _fail(f"{path}: cannot read: {exc}")
    for b in bad:
        print(f"atomic eval: {path}: {b} (skipped)", file=sys.stderr)
    if args.language:
        tasks = [t for t in tasks if t.language == args.language.lower()]
    if args.limit:
        tasks = tasks[: args.limit]
    if not tasks:
        return _fail(f"{path}: no task to run")

    out = Path(args.out or f"atomic-eval-{path.name.split('.')[0]}")
    out.mkdir(parents=True, exist_ok=True)
    run_info = {"file": str(path.resolve()), "samples": args.samples, "repairs": args.repairs,
                "temperature": args.temperature, "seed": args.seed, "provider": args.provider,
                "model": args.model}
    run_path = out / "run.json"
    if run_path.exists():
        before = json.loads(run_path.read_text())
        diff = [k for k in RUN_KEYS if before.get(k) != run_info[k]]
        if diff:
            return _fail(f"{out} holds a run with other {', '.join(diff)} "
                         f"({', '.join(f'{k}={before.get(k)!r}' for k in diff)}): give another --out")
        run_info["started_at"] = before.get("started_at")
    else:
        run_info["started_at"] = now_iso()
        write_json_atomically(run_path, run_info)

    from ..client import UsageError, connection

    try:
        conn = connection(args)
    except UsageError as exc:
        return _fail(str(exc))
    opts = EvalOptions(url=conn.url, samples=args.samples, concurrency=args.concurrency,
                       provider=args.provider, model=args.model, repairs=args.repairs,
                       temperature=args.temperature, seed=args.seed, priority=args.priority,
                       api_key=args.api_key, ssl_context=conn.ssl_context, job_timeout_s=args.job_timeout)
    results = ResultsFile(out / "results.jsonl")
    results.open()
    try:
        todo = [t for t in tasks if not results.done(t.task_id, retry_errors=args.retry_errors)]
        already = len(tasks) - len(todo)
        if already:
            print(f"atomic eval: resuming: {already} of {len(tasks)} tasks already in {results.path}",
                  file=sys.stderr)
        progress = Progress(len(tasks), already=already)
        interrupted = trio.run(_run, opts, results, todo, progress)
        progress.finish()
    finally:
        results.close()

    ids = {t.task_id for t in tasks}
    recs = [r for tid, r in results.records.items() if tid in ids]
    summary = summarize(recs, tasks=len(tasks), samples=args.samples, extra={
        "repairs": args.repairs, "temperature": args.temperature, "seed": args.seed,
        "url": args.url, "file": str(path), "started_at": run_info["started_at"], "finished_at": now_iso(),
        "interrupted": interrupted, "bad_lines": [str(b) for b in bad],
    })
    if summary["provider"] is None:
        summary["provider"] = args.provider
    if summary["model"] is None:
        summary["model"] = args.model
    write_json_atomically(out / "summary.json", summary)
    (out / "pass_at_k.svg").write_text(pass_at_k_svg(summary), encoding="utf-8")
    print(table(summary))
    print(f"\nresults: {results.path}\nsummary: {out / 'summary.json'}\nchart:   {out / 'pass_at_k.svg'}")
    if interrupted:
        print("atomic eval: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if summary["errors"] else 0


async def _run(opts: EvalOptions, results: ResultsFile, todo: list[Task], progress: Progress) -> bool:
    """Run ``todo``; True when a signal stopped it (jobs in flight were cancelled)."""
    state = RunState(total=len(todo))

    def on_record(rec: dict[str, Any]) -> None:
        progress.record(rec)

    runner = Runner(opts, results, state, on_record)
    interrupted = False
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                run_scope = trio.CancelScope()

                async def watch() -> None:
                    nonlocal interrupted
                    async for _ in signals:
                        interrupted = True
                        run_scope.cancel()
                        return

                async def tick() -> None:
                    while True:
                        await trio.sleep(0.5)
                        progress.redraw()

                nursery.start_soon(watch)
                nursery.start_soon(tick)
                with run_scope:
                    await runner.run(todo)
                nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(opts.cleanup_timeout_s, shield=True):
            await runner.aclose()
    return interrupted
