#!/usr/bin/env python
"""The local model at full speed: raw llama-cpp-python beside Atomic's pipeline, in one run.

Every configuration is a process that stays up for the whole run, and they take turns job
by job (the order rotating), so that a change in the machine's load falls on all of them
within seconds of each other; each figure is a median over jobs, and the pipeline's ratio
is the median of its ratio to the best raw configuration on the same job and turn:
- **raw**: llama-cpp-python loading the GGUF with ``n_threads = T`` for each T in --threads
  and each build, streaming ``create_chat_completion`` for the same chat messages the
  pipeline sends (its system prompt and a few short requests), greedy, --tokens at most,
  the KV cache kept between jobs (llama-cpp-python's prefix reuse); one more with the cache
  reset before each job (every prompt token evaluated). A raw job stops after --cap-s
  seconds (2 threads on a busy 2-core machine can fall to a few tokens/s);
- **pipeline**: ``atomic agent`` (local provider, its default threads unless
  --pipeline-threads) on a Unix socket, driven over IPC with ``generate`` frames as the
  server's pool sends them; tokens/s from the token frames; first-token latency from the
  provider's own clock (reported in the ``pong`` facts with the prompt tokens the job
  evaluated) and from sending the frame (IPC both ways included).
tokens/s = (completion tokens - 1) / (last token - first token): generation speed, prompt
evaluation excluded. CPU ms/token is the CPU time of the whole process (every thread: for
the pipeline, the agent's event loop and IPC too) over the same span, per token: on a
busy machine it moves much less than the wall clock. The first job after a load is a warm-up and is not counted.

Builds: ``--build NAME=DIR`` (repeatable) puts DIR first on PYTHONPATH so another
llama-cpp-python build (e.g. one with AVX-512) is measured; ``installed`` is the
interpreter's own. The pipeline uses --pipeline-build (default: installed).

    python benchmarks/bench_local.py [--threads 1,2] [--rounds 3] [--tokens 200] \\
        [--build avx512=/path/to/target] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REQUESTS = [
    "Print the sum of the integers from 1 to 100.",
    "Print FizzBuzz for the numbers 1 to 30.",
    "Print the word 'atomic' reversed.",
    "Print the first 10 square numbers, one per line.",
]
WARMUP = "Print hello world."


def chat(request: str) -> list[dict[str, str]]:
    from atomic.languages import LANGUAGES
    from atomic.pipeline.prompt import messages

    return messages(request, LANGUAGES["python"])


# --- raw llama-cpp-python (a process of its own, one job per stdin line) ------------------


def raw_serve(threads: int, tokens: int, reuse: bool, cap_s: float) -> None:
    import llama_cpp

    from atomic import config
    from atomic.agent.providers.local import find_model_path

    path = find_model_path(config.load(env={}))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    evals: list[int] = []
    decode = llm.eval

    def counted(toks: Any) -> None:
        evals.append(len(toks))
        decode(toks)

    llm.eval = counted  # type: ignore[method-assign]
    print(json.dumps({"ready": True, "system_info": llama_cpp.llama_print_system_info().decode()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)["request"]
        if not reuse:
            llm.reset()
        evals.clear()
        start = time.perf_counter()
        first = last = None
        cpu_first = cpu_last = 0.0
        pieces = []
        chunks = llm.create_chat_completion(messages=chat(request), stream=True, max_tokens=tokens,
                                            temperature=0.0, seed=42)
        for chunk in chunks:
            text = chunk["choices"][0].get("delta", {}).get("content")
            if text:
                last = time.perf_counter()
                cpu_last = time.process_time()
                if first is None:
                    first, cpu_first = last, cpu_last
                pieces.append(text)
                if last - start > cap_s:
                    break
        chunks.close()
        n = len(llm.tokenize("".join(pieces).encode(), add_bos=False, special=False))
        print(json.dumps({
            "first_token_ms": (first - start) * 1000 if first else None,
            "tokens_per_s": (n - 1) / (last - first) if first and last and last > first and n > 1 else None,
            "cpu_ms_per_token": (cpu_last - cpu_first) * 1000 / (n - 1) if n > 1 else None,
            "completion_tokens": n,
            "prompt_evaluated": evals[0] if evals else 0,
        }), flush=True)


class Raw:
    def __init__(self, name: str, build: str | None, threads: int, tokens: int, reuse: bool, cap_s: float) -> None:
        self.name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(x for x in (build, str(REPO)) if x)
        args = [sys.executable, __file__, "--worker", "raw", "--threads", str(threads), "--tokens", str(tokens),
                "--cap-s", str(cap_s)]
        if not reuse:
            args.append("--no-reuse")
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.system_info = ""

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"raw worker {self.name} exited ({self.proc.wait()})")
        return dict(json.loads(line))

    def ready(self) -> None:
        self.system_info = self._line()["system_info"]

    def job(self, request: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"request": request}) + "\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- the pipeline: the agent over IPC ----------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU time of every thread of a process so far (ns-precise, from schedstat)."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total / 1e9


class Pipeline:
    def __init__(self, build: str | None, threads: int | None, tokens: int) -> None:
        self.name = "pipeline"
        self.tokens = tokens
        self.tmp = tempfile.mkdtemp(prefix="atomic-bl-")
        self.sock = f"{self.tmp}/agent.sock"
        env = dict(os.environ)
        env.update({"PYTHONPATH": os.pathsep.join(x for x in (build, str(REPO)) if x), "ATOMIC_IPC_SOCKET": self.sock,
                    "ATOMIC_PROVIDER": "local", "ATOMIC_LOG_LEVEL": "WARNING", "ATOMIC_MAX_TOKENS": str(tokens)})
        if threads:
            env["ATOMIC_LOCAL_THREADS"] = str(threads)
        self.proc = subprocess.Popen([sys.executable, "-m", "atomic", "agent"], env=env, stdout=subprocess.DEVNULL)
        self.conn: Any = None
        self.ids = 0
        self.facts: dict[str, Any] = {}

    async def ready(self) -> None:
        import trio

        from atomic import config
        from atomic.ipc import messages as m
        from atomic.ipc.connection import open_connection

        with trio.fail_after(60):
            while not os.path.exists(self.sock):
                if self.proc.poll() is not None:
                    raise RuntimeError("the agent exited")
                await trio.sleep(0.05)
            self.conn = await open_connection(config.load(env={}, overrides={"ipc_socket": self.sock}))
        await self.conn.send(m.hello())
        await self.conn.receive()

    async def job(self, request: str) -> dict[str, Any]:
        from atomic.ipc import messages as m

        self.ids += 1
        body = {"messages": chat(request), "provider": "local", "max_tokens": self.tokens, "temperature": 0.0,
                "seed": 42}
        start = time.perf_counter()
        await self.conn.send(m.generate(self.ids, body))
        first = last = None
        cpu_first = cpu_last = 0.0
        while True:
            msg = await self.conn.receive()
            assert msg is not None, "agent closed the connection"
            if msg["type"] == m.TOKEN:
                last = time.perf_counter()
                cpu_last = cpu_s(self.proc.pid)
                if first is None:
                    first, cpu_first = last, cpu_last
            elif msg["type"] == m.DONE:
                break
            elif msg["type"] == m.ERROR:
                raise RuntimeError(f"agent error: {msg['error']}")
        self.ids += 1
        await self.conn.send(m.ping(self.ids))
        while (pong := await self.conn.receive()) is not None and pong["type"] != m.PONG:
            pass
        if pong and "providers" in pong:
            self.facts = next(p for p in pong["providers"] if p.get("name") == "local")
        n = msg["usage"]["completion_tokens"]
        last_gen = self.facts.get("last", {})
        return {
            "first_token_ms": (first - start) * 1000 if first else None,
            "agent_first_token_ms": last_gen.get("first_token_ms"),
            "tokens_per_s": (n - 1) / (last - first) if first and last and last > first and n > 1 else None,
            "cpu_ms_per_token": (cpu_last - cpu_first) * 1000 / (n - 1) if n > 1 else None,
            "completion_tokens": n,
            "prompt_evaluated": last_gen.get("prompt_tokens_evaluated"),
            "threads": self.facts.get("threads"),
        }

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.aclose()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- the run -----------------------------------------------------------------------------


def med(xs: list[Any]) -> float:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else float("nan")


async def _measure(builds: dict[str, str | None], threads: list[int], rounds: int, tokens: int,
                   pipeline_build: str, pipeline_threads: int | None, cap_s: float, log: Any) -> dict[str, Any]:
    import trio

    raws = [Raw(f"{name}/t{t}", path, t, tokens, True, cap_s) for name, path in builds.items() for t in threads]
    reset = Raw(f"{pipeline_build}/t{threads[0]}/reset", builds[pipeline_build], threads[0], tokens, False, cap_s)
    pipe = Pipeline(builds[pipeline_build], pipeline_threads, tokens)
    everyone: list[Any] = [*raws, reset, pipe]
    try:
        for r in [*raws, reset]:
            await trio.to_thread.run_sync(r.ready)
        await pipe.ready()

        async def run(c: Any, request: str) -> dict[str, Any]:
            if isinstance(c, Pipeline):
                return await c.job(request)
            return await trio.to_thread.run_sync(c.job, request)

        for c in everyone:  # warm-up: loads, first decodes
            await run(c, WARMUP)
        jobs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in everyone}
        turns: list[dict[str, dict[str, Any]]] = []
        for r in range(rounds):
            for q, request in enumerate(REQUESTS):
                k = r * len(REQUESTS) + q
                order = everyone[k % len(everyone):] + everyone[: k % len(everyone)]
                turn = {}
                for c in order:
                    turn[c.name] = await run(c, request)
                    jobs[c.name].append(turn[c.name])
                turns.append(turn)
            log(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {med([j['tokens_per_s'] for j in js[-len(REQUESTS):]]):.0f}" for name, js in jobs.items())
                + " tok/s; load " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        info = {r.name.split("/")[0]: r.system_info for r in raws}
    finally:
        for c in everyone:
            if isinstance(c, Pipeline):
                await c.close()
            else:
                c.close()
    names = [r.name for r in raws]
    ratios = []
    for turn in turns:
        best = max((turn[n]["tokens_per_s"] or 0.0) for n in names)
        if best and turn["pipeline"]["tokens_per_s"]:
            ratios.append(turn["pipeline"]["tokens_per_s"] / best)
    rows = {name: {"tokens_per_s": med([j["tokens_per_s"] for j in js]),
                   "cpu_ms_per_token": med([j["cpu_ms_per_token"] for j in js]),
                   "first_token_ms": med([j["first_token_ms"] for j in js]),
                   "prompt_evaluated": med([j["prompt_evaluated"] for j in js])}
            for name, js in jobs.items()}
    rows["pipeline"]["agent_first_token_ms"] = med([j["agent_first_token_ms"] for j in jobs["pipeline"]])
    rows["pipeline"]["threads"] = sorted({j["threads"] for j in jobs["pipeline"]})
    best_name = max(names, key=lambda n: rows[n]["tokens_per_s"])
    return {"rows": rows, "ratio": med(ratios), "ratios": ratios, "best_raw": best_name, "jobs": jobs,
            "turns": turns, "raw_names": names, "reset_name": reset.name, "system_info": info,
            "tokens": tokens, "rounds": rounds, "pipeline_build": pipeline_build}


def measure(builds: dict[str, str | None], threads: list[int], rounds: int, tokens: int, pipeline_build: str,
            pipeline_threads: int | None, cap_s: float = 15.0,
            log: Any = lambda msg: print(msg, file=sys.stderr, flush=True)) -> dict[str, Any]:
    import trio

    return trio.run(_measure, builds, threads, rounds, tokens, pipeline_build, pipeline_threads, cap_s, log)


def table(res: dict[str, Any]) -> str:
    lines = [f"{'':34} {'tok/s':>7} {'CPU ms/tok':>10} {'first token ms':>15} {'prompt tokens evaluated/job':>28}"]
    for name, row in res["rows"].items():
        label = ("raw " + name) if name != "pipeline" else f"pipeline ({res['pipeline_build']}, over IPC)"
        lines.append(f"{label:34} {row['tokens_per_s']:7.1f} {row['cpu_ms_per_token']:10.2f} "
                     f"{row['first_token_ms']:15.1f} {row['prompt_evaluated']:28.0f}")
    p = res["rows"]["pipeline"]
    lines += [
        "",
        f"pipeline / best raw on the same turn: median {res['ratio']:.2f}x over {len(res['ratios'])} jobs "
        f"(best raw overall: {res['best_raw']}; target >= 0.9x); pipeline threads used: {p['threads']}",
        f"first token after the agent gets the request: {p['agent_first_token_ms']:.1f} ms (provider's clock), "
        f"{p['first_token_ms']:.1f} ms at the client (target < 100 ms)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=("raw",), help=argparse.SUPPRESS)
    ap.add_argument("--no-reuse", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="1,2", help="raw thread counts (comma-separated)")
    ap.add_argument("--pipeline-threads", type=int, help="ATOMIC_LOCAL_THREADS for the agent (default: its own)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four requests")
    ap.add_argument("--tokens", type=int, default=150, help="max tokens per job")
    ap.add_argument("--cap-s", type=float, default=15.0, help="a raw job stops after this many seconds")
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--pipeline-build", default="installed")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.worker == "raw":
        raw_serve(int(args.threads), args.tokens, not args.no_reuse, args.cap_s)
        return 0
    builds: dict[str, str | None] = {"installed": None}
    for spec in args.build:
        name, _, path = spec.partition("=")
        builds[name] = path
    res = measure(builds, [int(t) for t in args.threads.split(",")], args.rounds, args.tokens,
                  args.pipeline_build, args.pipeline_threads, args.cap_s)
    print(table(res))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def local_figures(ctx: Any) -> list[Any]:
    """The "local model" group of benchmarks/run: the installed build, raw at 1 and 2
    threads beside the pipeline at its default threads, ``ctx.runs`` rounds."""
    from harness.report import Figure

    ctx.log(f"local model: raw llama-cpp-python (1, 2 threads) vs the agent over IPC, {ctx.runs} round(s)")
    res = measure({"installed": None}, [1, 2], ctx.runs, 100 if ctx.quick else 150, "installed", None,
                  log=lambda msg: ctx.log("  " + msg))
    turns = res["turns"]
    best_raw = [max(t[n]["tokens_per_s"] or 0.0 for n in res["raw_names"]) for t in turns]
    pipe = res["jobs"]["pipeline"]
    details = {"rows": res["rows"], "ratio_median_per_turn": res["ratio"], "best_raw": res["best_raw"],
               "system_info": res["system_info"]}
    return [
        Figure("local_tps", "local model: pipeline tokens/s vs best raw llama.cpp on the same turn", "tok/s",
               [j["tokens_per_s"] for j in pipe], best_raw, ">= 0.9x baseline", ("ratio>=", 0.9), details=details),
        Figure("local_first_token", "local model: first token after the agent gets the request", "ms",
               [j["agent_first_token_ms"] for j in pipe], None, "< 100 ms", ("<", 100.0)),
        Figure("local_prompt_reuse", "local model: prompt tokens evaluated per job (vs cache reset)", "tokens",
               [j["prompt_evaluated"] for j in pipe], [j["prompt_evaluated"] for j in res["jobs"][res["reset_name"]]],
               "<= 0.5x baseline", ("ratio<=", 0.5)),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
