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
import math
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


def h2load_path() -> str | None:
    return shutil.which("h2load")


def h2load(url: str, *, connections: int, duration: float, h1: bool, body: bytes = b"",
           cpus: set[int] | None = None) -> dict[str, Any]:
    """Closed loop with nghttp2's ``h2load`` (one request in flight per connection): plain
    HTTP/1.1 (``h1`` and an http URL), HTTPS/1.1 (``h1``, https) or HTTP/2 over TLS (ALPN).
    A body makes it a POST of that JSON. The same tool for all three keeps them comparable.
    Latency: h2load reports mean and max, not percentiles."""
    exe = h2load_path()
    if exe is None:
        raise RuntimeError("h2load is not installed (apt-get install -y nghttp2-client; tools/setup.sh does)")
    with tempfile.TemporaryDirectory() as tmp:
        argv = [exe, "-c", str(connections), "-m", "1", "-t", "1", "-D", str(max(1, round(duration)))]
        if h1:
            argv.append("--h1")
        if body:
            bf = Path(tmp) / "body.json"
            bf.write_bytes(body)
            argv += ["-d", str(bf), "-H", "content-type: application/json"]
        argv.append(url)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True,
                             preexec_fn=_pinned(cpus)).stdout
    return parse_h2load(out)


def parse_h2load(out: str) -> dict[str, Any]:
    import re

    def units(text: str) -> float:  # h2load's durations: 318us, 15.50ms, 1.2s
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
        if m is None:
            return math.nan
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

    finished = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    requests = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    timing = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    protocol = re.search(r"Application protocol: (\S+)", out)
    if not (finished and requests and codes):
        raise RuntimeError(f"cannot read h2load's output:\n{out[-2000:]}")
    secs = float(finished[1])
    done, ok = int(requests[2]), int(codes[1])
    # h2load's HTTP/1 parser does not take a status line without a reason phrase, which is
    # what Hypercorn (h11) sends ("HTTP/1.1 200 "): it counts those answers done but
    # failed, with no status. Then the answers done are the figure, and the caller checks
    # the status once with a client of its own (edges._check).
    unread = done > 0 and not any(int(c) for c in codes.groups())
    if unread:
        ok = done - int(requests[5])
    return {
        "tool": "h2load",
        "protocol": protocol[1] if protocol else None,
        "requests": done,
        "status_unread": unread,
        "ok": ok,
        "errors": int(requests[5]) if unread else int(requests[4]) + int(requests[5]),
        "status": {"2xx": ok, "3xx": int(codes[2]), "4xx": int(codes[3]), "5xx": int(codes[4])},
        "duration_s": secs,
        "rps": float(finished[2]),
        "ok_rps": ok / secs if secs else 0.0,
        "latency_ms": {"mean": units(timing[3]) if timing else math.nan,
                       "max": units(timing[2]) if timing else math.nan},
    }


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
