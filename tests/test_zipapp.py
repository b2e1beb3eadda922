"""The one-file build: tools/build-zipapp.sh makes a zipapp that serves.

Slow (the first build downloads the dependencies into pip's cache), so marked ``slow``.
The built file runs with this interpreter (it is tied to the Python version it was built
with) and unpacks into a temporary SHIV_ROOT, as a fresh machine would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUILD_LIMIT_S = 900  # a cold pip cache downloads every dependency
START_LIMIT_S = 120  # the first run unpacks the zipapp
STOP_LIMIT_S = 30


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zipapp") / "atomic.pyz"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        [str(ROOT / "tools" / "build-zipapp.sh"), "-o", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_LIMIT_S, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert out.is_file() and os.access(out, os.X_OK)
    return out


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine that knows nothing of Atomic or systemd."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ATOMIC_", "SHIV_", "NOTIFY_SOCKET", "WATCHDOG_", "PYTHON"))
    }
    env["SHIV_ROOT"] = str(tmp_path / "shiv")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_zipapp_is_one_executable_python_file(zipapp: Path) -> None:
    assert zipapp.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_zipapp_loads_the_compiled_twins(zipapp: Path, run_env: dict[str, str]) -> None:
    # SHIV_INTERPRETER=1 turns the zipapp into a Python interpreter over its own contents.
    code = (
        "import atomic._fast as f\n"
        "for name in f.TWINS: f.load(name)\n"
        "print(sorted(n for n, fast in f.USING_EXTENSIONS.items() if fast))\n"
        "print(f.__file__)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(zipapp), "-c", code],
        env={**run_env, "SHIV_INTERPRETER": "1"}, capture_output=True, text=True, timeout=START_LIMIT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    using, where = proc.stdout.splitlines()
    assert using == "['codec', 'queue_core']"
    assert where.startswith(run_env["SHIV_ROOT"])  # the unpacked copy, not this checkout


def test_zipapp_serves_health_and_stops_cleanly_on_sigterm(
    zipapp: Path, run_env: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(zipapp), "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--socket", str(tmp_path / "agent.sock"), "--agent", "external"],
            env=run_env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_LIMIT_S
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, f"no /health within {START_LIMIT_S} s:\n{log_path.read_text()[-4000:]}"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_LIMIT_S) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
