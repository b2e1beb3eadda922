"""Operating `atomic serve` as a service: systemd notify, SIGHUP reload, degraded status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, tmp_path: Path, env: dict[str, str], args: list[str] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        sock_dir = tempfile.mkdtemp(prefix="atomic-ops")
        self.env = {
            **os.environ,
            "ATOMIC_HTTP_PORT": str(self.port),
            "ATOMIC_DATA_DIR": str(tmp_path / "data"),
            "ATOMIC_IPC_SOCKET": f"{sock_dir}/agent.sock",
            "ATOMIC_PROVIDER": "replay",
            "ATOMIC_WARM_POOL_SIZE": "0",
            "ATOMIC_LOG_FORMAT": "json",
            **env,
        }
        self.log_path = tmp_path / f"serve-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.signalled = False
        self.proc = subprocess.Popen([sys.executable, "-m", "atomic", "serve", *args], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_http(self, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while True:
            assert self.proc.poll() is None, self.text()[-3000:]
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.text()[-3000:]
            time.sleep(0.1)

    def status(self, headers=None) -> dict:
        return httpx.get(self.url + "/api/status", timeout=5, headers=headers).json()

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, limit: float = 20) -> None:
        deadline = time.monotonic() + limit
        while needle not in self.text():
            assert time.monotonic() < deadline, f"{needle!r} not logged:\n" + self.text()[-3000:]
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            if not self.signalled:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def served(tmp_path):
    made = []

    def make(env=None, args=()):
        s = Served(tmp_path, env or {}, list(args))
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def test_notify_ready_after_bind_and_agent_then_stopping(served, tmp_path, docker_client):
    path = tempfile.mktemp(prefix="atomic-notify", dir="/tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    try:
        s = served({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        # READY only once the HTTP socket answers and the agent is healthy.
        st = s.status()
        assert st["agent"]["healthy"] is True
        ready = next(m for m in messages if "READY=1" in m)
        assert f"MAINPID={s.proc.pid}" in ready and "STATUS=serving on http://" in ready
        # Watchdog pings at half the interval.
        sock.settimeout(5)
        assert "WATCHDOG=1" in sock.recv(4096).decode()
        # The agent child does not inherit NOTIFY_SOCKET.
        agent_env = Path(f"/proc/{st['agent']['pid']}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(b"NOTIFY_SOCKET=") for v in agent_env)
        s.proc.send_signal(signal.SIGTERM)
        s.signalled = True
        rest = []
        sock.settimeout(30)
        while not any("STOPPING=1" in m for m in rest):
            rest.append(sock.recv(4096).decode())
        assert s.stop() == 0
    finally:
        sock.close()
        os.unlink(path)


def test_sighup_reloads_safe_settings_and_provider_keys(served, tmp_path, docker_client):
    cfg = tmp_path / "atomic.toml"
    cfg.write_text('log_level = "INFO"\nmax_concurrent = 10\n')
    env_file = tmp_path / "atomic.env"
    env_file.write_text("")
    s = served({"ATOMIC_ENV_FILE": str(env_file)}, ["--config", str(cfg)])
    s.wait_http()
    before = {p["name"]: p for p in s.status()["agent"]["providers"]}
    assert before["openai"]["configured"] is False
    cfg.write_text('log_level = "DEBUG"\nmax_concurrent = 3\napi_keys = "sekret-key"\n')
    env_file.write_text("OPENAI_API_KEY=sk-test-not-real\n")
    s.proc.send_signal(signal.SIGHUP)
    s.wait_log("reload: provider variables changed: OPENAI_API_KEY")
    s.wait_log("max_concurrent")
    log = s.text()
    assert "sekret-key" not in log and "sk-test-not-real" not in log
    # api_keys applied at once: the API now wants the key; max_concurrent needs a restart.
    assert httpx.get(s.url + "/api/status", timeout=5).status_code == 401
    auth = {"Authorization": "Bearer sekret-key"}
    deadline = time.monotonic() + 20
    while True:
        st = s.status(auth)
        providers = {p["name"]: p for p in st["agent"]["providers"]}
        if providers["openai"]["configured"]:
            break
        assert time.monotonic() < deadline, providers["openai"]
        time.sleep(0.2)
    assert st["workers"]["total"] == 10
    assert s.stop() == 0


def test_degraded_reasons_agent_docker_and_data_dir(served, tmp_path):
    s = served({"ATOMIC_DOCKER_HOST": "unix:///nonexistent/docker.sock"}, ["--agent", "external"])
    s.wait_http()
    deadline = time.monotonic() + 20
    while True:
        st = s.status()
        reasons = " | ".join(st.get("reasons", []))
        if "agent" in reasons and "sandbox" in reasons:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    assert st["status"] == "degraded"
    assert st["sandbox"]["available"] is False and st["sandbox"]["reason"]
    assert st["agent"]["healthy"] is False
    # A job fails cleanly with the sandbox's reason; the server keeps serving.
    r = httpx.post(s.url + "/api/execute", json={"files": [{"path": "main.py", "content": "print(1)"}]}, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "sandbox_unavailable"
    assert httpx.get(s.url + "/health", timeout=5).status_code == 200
    # The data dir going read-only is a reason too.
    data = Path(s.env["ATOMIC_DATA_DIR"])
    os.chmod(data, 0o500)
    try:
        if os.access(data, os.W_OK):  # root ignores modes: make it unusable another way
            os.chmod(data, 0o700)
            os.rename(data, str(data) + ".moved")
            moved = True
        else:
            moved = False
        deadline = time.monotonic() + 5  # the server re-checks the data dir once a second
        while True:
            reasons = s.status().get("reasons", [])
            if any(r.startswith("data_dir:") for r in reasons):
                break
            assert time.monotonic() < deadline, reasons
            time.sleep(0.1)
    finally:
        if moved:
            os.rename(str(data) + ".moved", data)
        os.chmod(data, 0o700)
    res = subprocess.run([sys.executable, "-m", "atomic", "status", "--url", s.url],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "degraded" in res.stdout and "reason  sandbox:" in res.stdout
    assert s.stop() == 0
