"""Helpers for atomic eval's tests: task files, the CLI as a subprocess, results."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[2]


def write_tasks(path: Path, prompts: list[str], **extra: object) -> Path:
    with path.open("w") as fh:
        for i, prompt in enumerate(prompts):
            fh.write(json.dumps({"task_id": f"t{i:03d}", "prompt": prompt,
                                 "tests": [{"stdin": "", "expected_stdout": "ok\n"}], **extra}) + "\n")
    return path


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("ATOMIC_URL", None)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "atomic", *args]


async def run_cli(*args: str, limit: float = 60) -> trio.Process:
    with trio.fail_after(limit):
        return await trio.run_process(cli(*args), capture_stdout=True, capture_stderr=True, check=False,
                                      env=cli_env())


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
