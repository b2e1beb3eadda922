"""The execution engine's figures: per-language compile+run latency, and batch throughput.

- ``lang_<name>``: hello world (compile, then run with stdin) through
  ``SandboxController.execute``, against the Docker SDK running the same commands in one
  container per run (create, start, wait, logs, remove: what ``docker run --rm`` does),
  with Atomic's confinement. Alternated run by run; p50 of each.
- ``batch``: 164 HumanEval-sized Python programs (``benchmarks/humaneval_like.py``) sent
  to a real ``atomic serve`` as three concurrent ``POST /api/execute/batch`` requests
  (64 + 64 + 36 runs), against the Docker SDK doing one container per run on 4 threads.
  Runs per minute; the verdicts of both must be identical.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import trio

from .report import Figure
from .server import AtomicServer

HELLO: dict[str, tuple[str, str]] = {
    "python": ("main.py", "import sys\nprint('hello, ' + sys.stdin.read().strip())\n"),
    "shell": ("main.sh", 'read -r s; echo "hello, $s"\n'),
    "c": ("main.c", '#include <stdio.h>\nint main(void){char s[64]={0};if(scanf("%63s",s)!=1)return 1;'
                    'printf("hello, %s\\n",s);return 0;}\n'),
    "cpp": ("main.cpp", '#include <iostream>\n#include <string>\nint main(){std::string s;std::cin>>s;'
                        'std::cout<<"hello, "<<s<<"\\n";}\n'),
    "javascript": ("main.js", 'console.log("hello, " + require("fs").readFileSync(0, "utf8").trim());\n'),
    "go": ("main.go", 'package main\n\nimport "fmt"\n\nfunc main() {\n\tvar s string\n\tfmt.Scan(&s)\n'
                      '\tfmt.Println("hello, " + s)\n}\n'),
    "rust": ("main.rs", 'use std::io::Read;\nfn main() { let mut s = String::new(); '
                        'std::io::stdin().read_to_string(&mut s).unwrap(); println!("hello, {}", s.trim()); }\n'),
    "java": ("Main.java", 'public class Main { public static void main(String[] a) { '
                          'System.out.println("hello, " + new java.util.Scanner(System.in).next()); } }\n'),
}
LANG_KEYS = [f"lang_{name}" for name in HELLO]


def _settings(workdir: Path, **overrides: Any) -> Any:
    from atomic import config

    return config.load(env={}, overrides={"data_dir": str(workdir), **overrides})


class SdkRunner:
    """One container per run through the Docker SDK, with Atomic's confinement (only the
    log driver differs, so the output can be read back)."""

    def __init__(self, workdir: Path, settings: Any) -> None:
        import docker

        self.client = docker.from_env()
        self.api = self.client.api
        self.settings = settings
        self.workdir = workdir
        self._n = 0
        self._lock = threading.Lock()

    def run(self, image: str, files: list[tuple[str, bytes]], stdin: bytes, script: str, env: dict[str, str],
            limits: Any) -> tuple[int, bytes]:
        from atomic.sandbox import paths
        from atomic.sandbox.limits import USER, WORKSPACE, host_config_kwargs

        with self._lock:
            self._n += 1
            run_dir = self.workdir / f"sdk-{self._n}"
        paths.make_run_dir(str(run_dir.parent), run_dir.name)
        paths.write_inputs(str(run_dir), files, stdin)
        kw = host_config_kwargs(self.settings, limits, str(run_dir))
        kw["log_config"] = {"Type": "json-file", "Config": {}}
        cmd = ["sh", "-c", f"cp -R /atomic/files/. {WORKSPACE}/ && cd {WORKSPACE} && {script} < /atomic/stdin"]
        cid = self.api.create_container(image, command=cmd, user=USER, working_dir=WORKSPACE,
                                        network_disabled=True, environment=env,
                                        host_config=self.api.create_host_config(**kw),
                                        labels={"io.atomic.bench": "1"})["Id"]
        try:
            self.api.start(cid)
            code = int(self.api.wait(cid, timeout=300)["StatusCode"])
            return code, self.api.logs(cid, stdout=True, stderr=False)
        finally:
            self.api.remove_container(cid, force=True, v=True)
            paths.remove_run_dir(str(run_dir))

    def close(self) -> None:
        try:
            for c in self.client.containers.list(all=True, filters={"label": "io.atomic.bench=1"}):
                c.remove(force=True)
        finally:
            self.client.close()


# --- per-language latency -----------------------------------------------------------------

def language_figures(ctx: Any, only: set[str]) -> list[Figure]:
    import shlex

    from atomic.languages import LANGUAGES, image_name
    from atomic.sandbox import RunSpec, SandboxController
    from atomic.sandbox.limits import default_limits

    names = [n for n in HELLO if f"lang_{n}" in only]
    runs = 3 if ctx.quick else 7
    settings = _settings(ctx.dir("lang"), warm_pool_size=0)
    limits = default_limits(settings)
    # The baseline compiles in the same container, so it gets the compile's memory and processes.
    base_limits = limits.__class__(**{**limits.to_dict(), "memory_mb": limits.compile_memory_mb,
                                      "pids": settings.max_pids})
    sdk = SdkRunner(ctx.dir("lang-sdk"), settings)
    ctx.log(f"compile+run latency of hello world, {len(names)} language(s): atomic execute vs one SDK container, "
            f"x{runs}")
    out: list[Figure] = []

    async def measure(ctl: SandboxController, name: str) -> tuple[list[float], list[float]]:
        lang = LANGUAGES[name]
        entry, src = HELLO[name]
        files = [(entry, src.encode())]
        compile_argv = lang.compile_command([entry], entry)
        steps = [shlex.join(compile_argv)] if compile_argv else []
        script = " && ".join([*steps, "exec " + shlex.join(lang.command(entry))])
        env = lang.environment("/tmp")
        image = image_name(settings.sandbox_image, lang)
        a, b = [], []
        for i in range(runs + 1):  # the first round warms caches and is not counted
            t0 = time.perf_counter()
            res = await ctl.execute(RunSpec(files=files, language=name, stdin=b"bench\n"))
            ta = time.perf_counter() - t0
            if (res.verdict, res.stdout) != ("accepted", "hello, bench\n"):
                raise RuntimeError(f"{name}: atomic run went wrong: {res}")
            t0 = time.perf_counter()
            code, logs = await trio.to_thread.run_sync(sdk.run, image, files, b"bench\n", script, env, base_limits)
            tb = time.perf_counter() - t0
            if code != 0 or logs != b"hello, bench\n":
                raise RuntimeError(f"{name}: SDK run went wrong: exit {code}, {logs[:300]!r}")
            if i:
                a.append(ta * 1000)
                b.append(tb * 1000)
            # Untimed: the previous container's removal finishes first.
            while ctl.statistics().containers_alive:
                await trio.sleep(0.02)
        return a, b

    async def main() -> None:
        ctl = SandboxController(settings)
        async with trio.open_nursery() as nursery:
            await nursery.start(ctl.run)
            while not ctl.status()["available"]:
                await trio.sleep(0.05)
            for name in names:
                if name not in ctl.languages():
                    raise RuntimeError(f"{name}: image not built (atomic sandbox build-image --language {name})")
                a, b = await measure(ctl, name)
                ctx.log(f"  {name}: atomic p50 {statistics.median(a):.0f} ms, SDK p50 {statistics.median(b):.0f} ms")
                # One value per figure run: the p50 of this run's samples.
                out.append(Figure(f"lang_{name}", f"{name}: hello world compile+run, p50", "ms",
                                  [statistics.median(a)], [statistics.median(b)], "report",
                                  None, details={"atomic_ms": a, "sdk_ms": b, "samples": runs}))
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        sdk.close()
    return out


# --- batch throughput ---------------------------------------------------------------------

def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=900) as resp:
        return dict(json.loads(resp.read()))


def batch_figure(ctx: Any) -> Figure:
    import humaneval_like

    from atomic.sandbox.limits import default_limits

    progs = humaneval_like.programs()
    n = len(progs)
    expected = ["accepted" if ok else "runtime_error" for _, ok in progs]
    chunks = [list(range(i, min(i + 64, n))) for i in range(0, n, 64)]
    settings = _settings(ctx.dir("batch-sdk"))
    sdk = SdkRunner(ctx.dir("batch-sdk"), settings)
    limits = default_limits(settings)
    image = settings.sandbox_image
    ctx.log(f"batch: {n} HumanEval-sized Python runs, atomic /api/execute/batch ({len(chunks)} requests at once) "
            f"vs the Docker SDK, one container per run on 4 threads; x{ctx.runs}")

    def atomic_once(srv: AtomicServer) -> tuple[float, list[str]]:
        verdicts: list[str] = [""] * n
        failures: list[BaseException] = []

        def send(idx: list[int]) -> None:
            try:
                body = {"runs": [{"files": [{"path": "main.py", "content": progs[i][0]}]} for i in idx]}
                doc = _post(srv.url("/api/execute/batch"), body)
                for i, r in zip(idx, doc["results"], strict=True):
                    verdicts[i] = r.get("verdict") or f"error: {r.get('error')}"
            except BaseException as exc:  # noqa: BLE001 - reported after the join
                failures.append(exc)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return time.perf_counter() - t0, verdicts

    def sdk_once() -> tuple[float, list[str]]:
        verdicts: list[str] = [""] * n
        todo = list(range(n))
        lock = threading.Lock()
        failures: list[BaseException] = []

        def worker() -> None:
            while True:
                with lock:
                    if not todo or failures:
                        return
                    i = todo.pop(0)
                try:
                    code, _ = sdk.run(image, [("main.py", progs[i][0].encode())], b"", "exec python3 main.py", {},
                                      limits)
                    verdicts[i] = "accepted" if code == 0 else "runtime_error"
                except BaseException as exc:  # noqa: BLE001 - reported after the join
                    failures.append(exc)
                    return

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return time.perf_counter() - t0, verdicts

    a, b = [], []
    with AtomicServer(ctx.dir("batch"), warm_pool_size=0) as srv:
        srv.start(sandbox=True)
        try:
            atomic_once(srv)  # warm-up: page cache, connections
            for i in range(ctx.runs):
                ta, va = atomic_once(srv)
                tb, vb = sdk_once()
                if va != vb or va != expected:
                    diff = [(j, va[j], vb[j], expected[j]) for j in range(n) if not va[j] == vb[j] == expected[j]]
                    raise RuntimeError(f"verdicts differ (index, atomic, sdk, expected): {diff[:5]}")
                a.append(n / ta * 60)
                b.append(n / tb * 60)
                ctx.log(f"  run {i + 1}: atomic {a[-1]:.0f} runs/min ({ta:.1f} s); SDK {b[-1]:.0f} runs/min "
                        f"({tb:.1f} s); verdicts identical ({expected.count('accepted')} accepted)")
        finally:
            sdk.close()
    return Figure("batch", f"batch of {n} HumanEval-sized Python runs", "runs/min", a, b, ">= 3x baseline",
                  ("ratio>=", 3.0), details={"runs": n, "requests": len(chunks), "sdk_threads": 4,
                                             "verdicts": {"accepted": expected.count("accepted"),
                                                          "runtime_error": expected.count("runtime_error")}})
