"""What a run shows and leaves behind: the progress line, ``summary.json`` and the table."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from .estimator import ks_for, mean_pass_at_k


def summarize(records: Iterable[dict[str, Any]], *, tasks: int, samples: int,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json``: pass@k over the tasks that were judged, plus what explains it."""
    recs = list(records)
    scored = [(r["n"], r["c"]) for r in recs if r.get("n")]
    pass_at: dict[str, float | None] = {}
    for k in ks_for(samples):
        value = mean_pass_at_k(scored, k)
        pass_at[str(k)] = None if value is None else round(value, 6)
    verdicts: Counter[str] = Counter()
    for r in recs:
        for s in r.get("samples") or []:
            verdicts[str(s.get("verdict"))] += 1
    errors = Counter(str((r.get("error") or {}).get("code")) for r in recs if r.get("error") and not r.get("n"))
    usage: dict[str, Any] = next((r["usage"] for r in recs if isinstance(r.get("usage"), dict) and r["usage"].get("model")), {})
    short = [r for r in recs if r.get("n") and r["n"] < samples]
    doc: dict[str, Any] = {
        "tasks": tasks,
        "samples": samples,
        "pass@k": pass_at,
        "recorded": len(recs),
        "scored": len(scored),
        "solved": sum(1 for _, c in scored if c > 0),
        "errors": sum(errors.values()),
        "errors_by_code": dict(sorted(errors.items())),
        "verdicts": dict(verdicts.most_common()),
        "fewer_samples_than_asked": len(short),
        "provider": usage.get("provider"),
        "model": usage.get("model"),
    }
    doc.update(extra or {})
    return doc


def _fmt_pct(x: float | None) -> str:
    return "   -   " if x is None else f"{100 * x:6.2f}%"


def _fmt_duration(s: float) -> str:
    if math.isinf(s) or math.isnan(s):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def table(summary: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    lines = [
        f"tasks {summary['tasks']}  recorded {summary['recorded']}  scored {summary['scored']}  "
        f"solved {summary['solved']}  errors {summary['errors']}  samples/task {summary['samples']}",
        f"model {summary.get('provider') or '?'}/{summary.get('model') or '?'}  repairs {summary.get('repairs')}",
        "",
        "  k    pass@k",
        "  ---  -------",
    ]
    for k, v in summary["pass@k"].items():
        lines.append(f"  {k:>3}  {_fmt_pct(v)}")
    if summary["verdicts"]:
        lines += ["", "verdicts: " + ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items())]
    if summary["errors_by_code"]:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in summary["errors_by_code"].items()))
    return "\n".join(lines)


class Progress:
    """Tasks done/total, pass so far, rate and ETA: one redrawn bar on a terminal, one
    plain line per finished task otherwise (logs, CI)."""

    def __init__(self, total: int, already: int = 0, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.total = total
        self.done = 0  # in this run
        self.already = already  # recorded by an earlier run
        self.passed = 0  # tasks with at least one accepted sample (this run)
        self.errors = 0
        self.t0 = time.monotonic()
        self._width = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.already - self.done
        eta = left / rate if rate > 0 else math.inf
        finished = self.already + self.done
        frac = finished / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        solved = f"{self.passed}/{self.done}" if self.done else "-"
        return (f"[{bar:<24}] {finished}/{self.total} tasks  solved {solved}  errors {self.errors}  "
                f"{rate * 60:.1f} tasks/min  ETA {_fmt_duration(eta)}")

    def record(self, rec: dict[str, Any]) -> None:
        self.done += 1
        if rec.get("c"):
            self.passed += 1
        if rec.get("error") and not rec.get("n"):
            self.errors += 1
        if self.tty:
            self.redraw()
        else:
            what = (f"{rec['c']}/{rec['n']} accepted" if rec.get("n")
                    else f"error {(rec.get('error') or {}).get('code')}: {(rec.get('error') or {}).get('message')}")
            print(f"{self.already + self.done}/{self.total} {rec['task_id']}: {what}", file=self.out, flush=True)

    def redraw(self) -> None:
        if not self.tty:
            return
        text = self.line()
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.out.write("\r" + text + " " * pad)
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.redraw()
            self.out.write("\n")
            self.out.flush()
