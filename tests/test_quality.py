"""Static checks as tests, so CI holds the code to them: ruff (lint) and mypy (types)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean():
    res = run(str(BIN / "ruff"), "check", "atomic", "tests", "benchmarks")
    assert res.returncode == 0, res.stdout[-4000:]


def test_mypy_is_clean_on_atomic():
    res = run(sys.executable, "-m", "mypy", "atomic")
    assert res.returncode == 0, res.stdout[-4000:]
