"""``pass_at_k.svg``: a bar per k, the pass@k value on it. Plain SVG written by hand (a
plotting library would be a large dependency for a dozen rectangles)."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 56, 56


def pass_at_k_svg(summary: dict[str, Any]) -> str:
    """The chart for a summary's ``pass@k`` (k with no value are drawn as gaps)."""
    items = list(summary["pass@k"].items())
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(items))
    bar_w = min(80.0, slot * 0.6)
    title = (f"pass@k: {summary.get('provider') or '?'}/{summary.get('model') or '?'}, "
             f"{summary['scored']} tasks, {summary['samples']} samples each")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="28" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for pct in range(0, 101, 25):  # grid and y labels
        y = TOP + plot_h * (1 - pct / 100)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{pct}%</text>')
    for i, (k, value) in enumerate(items):
        cx = LEFT + slot * (i + 0.5)
        out.append(f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle">k={escape(str(k))}</text>')
        if value is None:
            continue
        h = plot_h * float(value)
        y = TOP + plot_h - h
        out.append(f'<rect class="bar" data-k="{escape(str(k))}" data-value="{float(value):.6f}" '
                   f'x="{cx - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="#3b7dd8"/>')
        out.append(f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle">{100 * float(value):.1f}%</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle" fill="#555">samples drawn (k)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
