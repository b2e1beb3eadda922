"""The servers under test, each a subprocess with its own ports and data directory.

:class:`AtomicServer` runs ``python -m atomic serve`` (what ``atomic serve`` runs) with the
replay provider and the agent as its child; :class:`BaselineServer` runs
``hypercorn -k trio`` on :mod:`benchmarks.baseline_app` with the bind, backlog and
keep-alive settings Atomic gives Hypercorn. Both stop on SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """VmRSS of one process (its children, such as the agent, are not counted)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _get(url: str, timeout: float = 2.0, ca: str | None = None) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _clean_env() -> dict[str, str]:
    """The environment without the caller's ATOMIC_* settings (each run states its own) and
    without OTEL_* (tracing only where a figure turns it on)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ATOMIC_", "OTEL_"))}


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(server CPUs, load generator CPUs): the last CPU for the server under test, the rest
    for the client, so neither preempts the other; None on a one-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the agent child, Hypercorn's worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class _Proc:
    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    scheme = "http"
    ca: str | None = None  # the CA of an https server's certificate

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}:\n"
                                   + self.log_tail())
            try:
                if _get(self.url("/health"), 1.0, self.ca)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health within {timeout:.0f} s; see {self.log_path}")

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def pin(self, cpus: set[int] | None) -> None:
        """Every thread of this server and its children on ``cpus`` (None: all CPUs)."""
        target = cpus or os.sched_getaffinity(0)
        for pid in _tree(self.pid):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    os.sched_setaffinity(int(tid), target)
                except OSError:
                    pass  # a thread that just ended

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> _Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AtomicServer(_Proc):
    name = "atomic"

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None, ca: str | None = None,
                 **settings: Any) -> None:
        super().__init__(workdir)
        self.settings = settings
        self.extra_env = env or {}  # e.g. OTEL_* variables
        if settings.get("tls_cert"):
            self.scheme, self.ca = "https", ca

    def start(self, *, sandbox: bool = False, warm: int = 0, timeout: float = 120.0) -> AtomicServer:
        env = _clean_env()
        env.update({
            "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            "ATOMIC_HOST": HOST,
            "ATOMIC_HTTP_PORT": str(self.port),
            "ATOMIC_DATA_DIR": str(self.workdir / "data"),
            "ATOMIC_IPC_SOCKET": str(self.workdir / "agent.sock"),
            "ATOMIC_PROVIDER": "replay",
            "ATOMIC_LOG_LEVEL": "WARNING",
            "ATOMIC_LOG_FORMAT": "text",
        })
        for key, value in self.settings.items():
            env[f"ATOMIC_{key.upper()}"] = str(value)
        env.update(self.extra_env)
        self._spawn([sys.executable, "-m", "atomic", "serve"], env)
        t0 = time.monotonic()
        self._wait_http(timeout)
        self.wait_status(sandbox=sandbox, warm=warm, timeout=max(5.0, timeout - (time.monotonic() - t0)))
        self.startup_s = time.monotonic() - t0
        return self

    def status(self) -> dict[str, Any]:
        return _get(self.url("/api/status"), ca=self.ca)[1] or {}

    def wait_status(self, *, sandbox: bool, warm: int, timeout: float) -> dict[str, Any]:
        """Until the agent answers (and the sandbox is available with ``warm`` containers)."""
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status()
            agent_ok = bool(st.get("agent", {}).get("healthy"))
            box = st.get("sandbox", {})
            box_ok = not sandbox or (box.get("available") and box.get("warm", 0) >= warm)
            if agent_ok and box_ok:
                return st
            time.sleep(0.2)
        raise RuntimeError(f"atomic not ready within {timeout:.0f} s: {json.dumps(st)[:600]}\n{self.log_tail()}")


class BaselineServer(_Proc):
    name = "baseline"

    def start(self, timeout: float = 30.0) -> BaselineServer:
        env = _clean_env()
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        # The settings Atomic's runtime gives Hypercorn: one serving process, the same
        # backlog and keep-alive, no access log.
        argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "-w", "1", "-b", f"{HOST}:{self.port}",
                "--backlog", "1024", "--keep-alive", "75", "--graceful-timeout", "2",
                "benchmarks.baseline_app:app"]
        self._spawn(argv, env)
        self._wait_http(timeout)
        return self
