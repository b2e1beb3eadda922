#!/usr/bin/env python3
"""Print the configuration reference as a Markdown table (for README.md).

usage: .venv/bin/python tools/config-reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomic.config import reference
from atomic.reload import reloadable


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else " "


def main() -> None:
    live = {"ATOMIC_" + name.upper() for name in reloadable()}
    print("| Variable | Default | Meaning | Reload |")
    print("| --- | --- | --- | --- |")
    for var, default, doc in reference():
        shown = "(unset)" if not default else default if default == "(computed)" else f"`{default}`"
        print(f"| `{var}` | {_cell(shown)} | {_cell(doc)} | {'yes' if var in live else ''} |")


if __name__ == "__main__":
    main()
