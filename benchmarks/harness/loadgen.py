"""Load from a separate process on 127.0.0.1.

Closed loop: ``wrk`` when installed, else ``benchmarks/load.py``. Open loop (fixed rate):
``benchmarks/openloop.c``, compiled here on first use with the system's C compiler, else
``load.py``'s open mode (wrk has no fixed-rate mode, and a Python client's own jitter is the
size of the figures measured with it). All report the same record: ``tool``, ``requests``,
``ok`` (2xx answers), ``duration_s``, ``rps``, ``ok_rps`` and latency percentiles in ms.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent.parent
LOAD_PY = HERE / "load.py"
OPENLOOP_C = HERE / "openloop.c"
BUILD_DIR = HERE / ".build"

# wrk's Lua hooks: the method and body, and a JSON summary from done() so nothing is
# scraped from its human-readable table.
_WRK_LUA = """
wrk.method = %(method)s
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nJSON{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


def closed(url: str, *, connections: int, duration: float, method: str = "GET", body: bytes = b"",
           prefer_wrk: bool = True, cpus: set[int] | None = None) -> dict[str, Any]:
    """Closed-loop load for ``duration`` seconds on ``connections`` keep-alive connections
    (``cpus``: the CPUs the load generator runs on)."""
    wrk = wrk_path() if prefer_wrk else None
    if wrk is not None:
        return _wrk(wrk, url, connections, duration, method, body, cpus)
    return _load_py(["closed", url, "-c", str(connections), "-d", str(duration), "--method", method], body,
                    duration, cpus)


def _pinned(cpus: set[int] | None) -> Any:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def openloop_path() -> str | None:
    """The compiled ``openloop.c``, built once per source version; None without a C compiler."""
    source = OPENLOOP_C.read_bytes()
    exe = BUILD_DIR / f"openloop-{hashlib.sha256(source).hexdigest()[:12]}"
    if exe.exists():
        return str(exe)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    BUILD_DIR.mkdir(exist_ok=True)
    tmp = exe.with_suffix(".tmp")
    subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(OPENLOOP_C)], check=True, capture_output=True,
                   timeout=120)
    tmp.replace(exe)
    return str(exe)


def open_loop(url: str, *, rate: float, duration: float, connections: int = 32,
              prefer_c: bool = True, cpus: set[int] | None = None) -> dict[str, Any]:
    """Requests due at ``rate`` per second for ``duration`` seconds; latency counts from when
    each was due. ``send_late_ms`` (C client only) is how late the client itself wrote them.
    ``cpus``: the CPUs the client runs on."""
    exe = openloop_path() if prefer_c else None
    if exe is None:
        return _load_py(["open", url, "--rate", str(rate), "-d", str(duration), "-c", str(connections)], b"",
                        duration)
    u = urlsplit(url)
    argv = [exe, u.hostname or "127.0.0.1", str(u.port or 80), u.path or "/", str(rate), str(duration),
            str(connections)]
    r = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True,
                                  preexec_fn=_pinned(cpus)).stdout)
    ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
    r["ok"] = ok
    r["ok_rps"] = ok / r["duration_s"] if r["duration_s"] else 0.0
    return r


def count(url: str, *, n: int, connections: int, method: str = "GET", body: bytes = b"",
          max_duration: float = 600.0) -> dict[str, Any]:
    """Exactly ``n`` requests (closed loop), bounded by ``max_duration``."""
    return _load_py(["closed", url, "-c", str(connections), "-d", str(max_duration), "--count", str(n),
                     "--method", method], body, max_duration)


def _wrk(wrk: str, url: str, connections: int, duration: float, method: str, body: bytes,
         cpus: set[int] | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_LUA % {"method": _lua_string(method), "body": _lua_string(body.decode()) if body else "nil"})
        script = f.name
    try:
        argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
                "-s", script, url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True,
                             preexec_fn=_pinned(cpus)).stdout
    finally:
        Path(script).unlink(missing_ok=True)
    line = next(ln for ln in out.splitlines() if ln.startswith("JSON{"))
    r = json.loads(line[4:])
    secs = r["duration_us"] / 1e6
    ok = r["requests"] - r["non2xx"]
    return {
        "tool": "wrk",
        "requests": r["requests"],
        "ok": ok,
        "errors": r["socket_errors"],
        "duration_s": secs,
        "rps": r["requests"] / secs,
        "ok_rps": ok / secs,
        "latency_ms": {"p50": r["p50_us"] / 1000, "p90": r["p90_us"] / 1000, "p99": r["p99_us"] / 1000,
                       "max": r["max_us"] / 1000},
    }


def _load_py(args: list[str], body: bytes, duration: float, cpus: set[int] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        argv = [sys.executable, str(LOAD_PY), *args, "--json", str(out)]
        if body:
            bf = Path(tmp) / "body.json"
            bf.write_bytes(body)
            argv += ["--body-file", str(bf)]
        subprocess.run(argv, capture_output=True, timeout=duration + 90, check=True, preexec_fn=_pinned(cpus))
        r = json.loads(out.read_text())
    ok = sum(v for k, v in r["status"].items() if k.startswith("2"))
    return {
        "tool": "load.py",
        "requests": r["requests"],
        "ok": ok,
        "errors": r["errors"],
        "status": r["status"],
        "duration_s": r["duration_s"],
        "rps": r["rps"],
        "ok_rps": ok / r["duration_s"] if r["duration_s"] else 0.0,
        "latency_ms": {"p50": r["latency_ms"]["p50"], "p90": r["latency_ms"]["p90"],
                       "p99": r["latency_ms"]["p99"], "max": r["latency_ms"]["max"]},
        "target_rps": r.get("target_rps"),
    }
