"""Figures, their medians and spreads, the table and its JSON."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


@dataclass
class Figure:
    """One row of the table. ``runs`` and ``baseline_runs`` hold one value per run."""

    key: str
    label: str
    unit: str
    runs: list[float]
    baseline_runs: list[float] | None = None
    target: str = "-"
    # How "met?" is decided: ("ratio>=", x) / ("ratio<=", x) on median / baseline median,
    # ("<", x) / (">=", x) on the median, ("bool", None) on ok alone.
    rule: tuple[str, float | None] | None = None
    ok: bool | None = None  # for boolean targets (every client got every event ...)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def value(self) -> float:
        return med(self.runs)

    @property
    def baseline(self) -> float | None:
        return med(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        b = self.baseline
        if b is None or not b or math.isnan(b):
            return None
        return self.value / b

    @property
    def met(self) -> bool | None:
        if self.error is not None:
            return False
        if self.rule is None:
            return None
        kind, x = self.rule
        v = self.value
        if kind == "ratio>=":
            r = self.ratio
            return r is not None and r >= x
        if kind == "<":
            ok = not math.isnan(v) and v < x
            return ok if self.ok is None else (ok and self.ok)
        if kind == ">=":
            return not math.isnan(v) and v >= x
        if kind == "ratio<=":
            r = self.ratio
            return r is not None and r <= x
        if kind == "bool":
            return bool(self.ok)
        raise ValueError(kind)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(value=_num(self.value), baseline=_num(self.baseline), ratio=_num(self.ratio), met=self.met,
                 spread=_spread(self.runs), baseline_spread=_spread(self.baseline_runs))
        return d


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)


def _spread(xs: list[float] | None) -> list[float] | None:
    xs = [x for x in (xs or []) if x is not None and not math.isnan(x)]
    return [round(min(xs), 4), round(max(xs), 4)] if xs else None


def fmt(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s


def cell(xs: list[float] | None) -> str:
    if not xs:
        return "-"
    sp = _spread(xs)
    if sp is None:
        return "-"
    if len(xs) == 1:
        return fmt(med(xs))
    return f"{fmt(med(xs))} ({fmt(sp[0])}–{fmt(sp[1])})"


def table(figures: list[Figure]) -> str:
    head = ["figure", "Atomic", "baseline", "ratio", "target", "met?"]
    rows = []
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        if f.error:
            rows.append([f"{f.label} [{f.unit}]", "error", "-", "-", f.target, f"NO ({f.error[:60]})"])
            continue
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append([f"{f.label} [{f.unit}]", cell(f.runs), cell(f.baseline_runs), ratio, f.target, met])
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "figures": [f.to_dict() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str))
