#!/usr/bin/env python3
"""Screenshots of the web page for the README: `make screenshots` (or run this file).

Starts `atomic serve` with the replay provider (a fixed answer streamed at a readable
pace; no model needed, Docker runs the program), drives Debian's headless Chromium
through Playwright, and writes PNGs into docs/screenshots/. Everything it starts, it
stops; the server's data lives in a temporary directory.

usage: tools/screenshots.py [--out DIR] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]
ANSWER = """Here is a program that prints the prime numbers below 60, one per line.

```python main.py
def primes(limit: int) -> list[int]:
    \"\"\"The primes below `limit`, by the sieve of Eratosthenes.\"\"\"
    sieve = [True] * limit
    sieve[0:2] = [False, False]
    for n in range(2, int(limit ** 0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = [False] * len(range(n * n, limit, n))
    return [n for n, is_prime in enumerate(sieve) if is_prime]


if __name__ == "__main__":
    for p in primes(60):
        print(p)
```

It uses a sieve, so it runs in O(n log log n) time.
"""
PROMPT = "Write a Python program that prints the prime numbers below 60, one per line"
DESKTOP = {"viewport": {"width": 1280, "height": 860}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None, method: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def start_server(tmp: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "ATOMIC_PROVIDER": "replay",
        "ATOMIC_REPLAY_TEXT": ANSWER,
        "ATOMIC_REPLAY_TOKENS_PER_S": "25",
        "ATOMIC_DATA_DIR": str(tmp / "data"),
        "ATOMIC_IPC_SOCKET": str(tmp / "agent.sock"),
        "ATOMIC_HTTP_PORT": str(port),
        "ATOMIC_LOG_LEVEL": "WARNING",
        "ATOMIC_REPAIR_ATTEMPTS": "0",
    }
    env.pop("ATOMIC_API_KEYS", None)
    with open(tmp / "serve.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "atomic", "serve"], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"atomic serve stopped (exit {proc.returncode}); see {tmp / 'serve.log'}")
        try:
            if call(f"http://127.0.0.1:{port}/api/status")["agent"]["healthy"]:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    sys.exit("atomic serve did not become ready in 90 s")


def seed(base: str) -> None:
    """A few finished jobs of each kind, for the job list."""
    for prompt in ("Print a multiplication table from 1 to 9", "Count the words read from standard input",
                   "FizzBuzz from 1 to 30"):
        call(f"{base}/api/generate", {"prompt": prompt, "wait": True})
    job = call(f"{base}/api/generate", {"prompt": "Render the Mandelbrot set as ASCII art"})
    time.sleep(0.3)
    call(f"{base}/api/jobs/{job['id']}", method="DELETE")
    call(f"{base}/api/generate", {"prompt": "Sort a million numbers, within 1 ms", "wait": True,
                                  "limits": {"timeout_s": 0.001}})


def shoot(base: str, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    made: list[Path] = []

    def save(page, name: str, full: bool = True) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full, animations="disabled", caret="initial")
        made.append(path)
        print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    def background_jobs(n: int) -> threading.Thread:
        def run() -> None:
            for i in range(n):
                call(f"{base}/api/generate", {"prompt": f"warm-up {i}", "wait": True})

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        for scheme, suffix in (("light", ""), ("dark", "-dark")):
            ctx = browser.new_context(color_scheme=scheme, **DESKTOP)
            page = ctx.new_page()
            page.goto(base + "/")
            expect(page.locator("#health")).to_have_text("● ok")
            page.get_by_label("Prompt").fill(PROMPT)
            page.locator("details.more summary").click()
            if not suffix:
                save(page, "form")
            page.get_by_role("button", name="Generate").click()
            expect(page.locator("#job-state")).to_have_text("GENERATING")
            expect(page.locator("#code")).to_contain_text("sieve[n]")
            if not suffix:
                save(page, "job-running")
            page.wait_for_selector("#final-state", timeout=60_000)
            page.wait_for_timeout(300)
            save(page, f"job-done{suffix}")
            page.goto(base + "/#/jobs")
            expect(page.locator("#jobs-body tr").first).to_be_visible()
            if not suffix:
                save(page, "jobs")
            page.goto(base + "/#/status")
            expect(page.locator("#chart-stages rect.chart-bar").first).to_be_attached()
            worker = background_jobs(3)
            page.wait_for_timeout(9000)
            worker.join()
            page.wait_for_timeout(2500)
            save(page, f"status{suffix}")
            ctx.close()
        ctx = browser.new_context(color_scheme="light", **PHONE)
        page = ctx.new_page()
        page.goto(base + "/")
        expect(page.locator("#health")).to_have_text("● ok")
        page.get_by_label("Prompt").fill(PROMPT)
        save(page, "phone-form", full=False)
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("#final-state", timeout=60_000)
        page.wait_for_timeout(300)
        save(page, "phone-job", full=True)
        ctx.close()
        browser.close()
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--chromium", default=os.environ.get("ATOMIC_CHROMIUM", "/usr/bin/chromium"))
    args = ap.parse_args()
    if not shutil.which(args.chromium) and not Path(args.chromium).exists():
        sys.exit(f"no Chromium at {args.chromium}: run tools/setup.sh (it installs Debian's chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="atomic-shots-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"==> atomic serve on {base} (replay provider)")
    proc = start_server(tmp, port)
    try:
        seed(base)
        print(f"==> screenshots into {args.out}")
        shoot(base, args.out, args.chromium)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
