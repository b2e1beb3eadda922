"""schemathesis, as a new user would run it, against a live server and its own
``/openapi.json``: every phase (examples, coverage, fuzzing, stateful), every check, 0
failures. The exceptions, each with its reason, are in ``schemathesis.toml`` beside this
file. The server is the real one (Docker runs the programs; the replay provider is the
model); the run is bounded (a fixed seed, 20 cases an operation) to stay within ~2-3 min.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

HERE = Path(__file__).resolve().parent
ST = str(Path(sys.executable).parent / "st")


@pytest.mark.slow
async def test_schemathesis_finds_nothing(make_server, tmp_path):
    # Short run limits keep a fuzzed program that loops from holding a worker for long.
    server = await make_server(timeout_s=5, max_timeout_s=5, max_concurrent=4, max_queue_size=200)
    argv = [
        ST, "--config-file", str(HERE / "schemathesis.toml"), "--no-color",
        "run", server.url + "/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", os.environ.get("ATOMIC_FUZZ_EXAMPLES", "20"),
        "--seed", os.environ.get("ATOMIC_FUZZ_SEED", "20261201"),
        "--workers", "2",
        "--no-shrink",
        "--request-timeout", "60",  # a batch of 64 programs on 2 CPUs takes a while
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"}
    with trio.fail_after(600):
        # In a temporary directory: schemathesis keeps a crash cache in its working directory.
        done = await trio.run_process(argv, capture_stdout=True, stderr=subprocess.STDOUT, check=False, env=env,
                                      cwd=tmp_path)
    out = done.stdout.decode(errors="replace")
    print(out)  # shown by pytest when the test fails
    assert done.returncode == 0, out[-6000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", out), f"the {phase} phase did not pass"
    generated = int(re.search(r"(\d+) generated", out).group(1))  # type: ignore[union-attr]
    assert generated > 500, out[-2000:]  # a run that tested next to nothing proves nothing
