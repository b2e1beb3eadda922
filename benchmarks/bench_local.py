#!/usr/bin/env python
"""The local model at full speed: raw llama-cpp-python beside Atomic's pipeline, in one run.

Per round, interleaved (the machine is shared: figures drift, ratios hold):
- **raw**: a fresh process loads the GGUF with llama-cpp-python, ``n_threads = T`` for each
  T in --threads, and streams ``create_chat_completion`` for the same chat messages the
  pipeline sends (its system prompt and a few short requests), greedy, --tokens at most;
  with the KV cache kept between jobs (llama-cpp-python's prefix reuse), and for the
  pipeline's build at the first thread count also reset before each job (every prompt
  token evaluated);
- **pipeline**: a fresh ``atomic agent`` (local provider, its default threads unless
  --pipeline-threads) on a Unix socket, driven over IPC: the same requests as ``generate``
  frames; tokens/s from the token frames, first-token latency from sending the frame
  (so it includes the IPC hop both ways: an upper bound of the agent's own figure), and the
  prompt tokens each job evaluated as the agent reports them (``pong`` facts).
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
    from atomic.pipeline.languages import LANGUAGES
    from atomic.pipeline.prompt import messages

    return messages(request, LANGUAGES["python"])


# --- raw llama-cpp-python (runs in its own process) --------------------------------------


def raw_worker(threads: int, tokens: int, reuse: bool) -> dict[str, Any]:
    import llama_cpp

    from atomic import config
    from atomic.agent.providers.local import find_model_path

    path = find_model_path(config.load(env={}))
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    load_ms = (time.perf_counter() - t0) * 1000
    evals: list[int] = []
    decode = llm.eval

    def counted(toks: Any) -> None:
        evals.append(len(toks))
        decode(toks)

    llm.eval = counted  # type: ignore[method-assign]
    jobs = []
    for i, request in enumerate([WARMUP, *REQUESTS]):
        if not reuse:
            llm.reset()
        evals.clear()
        start = time.perf_counter()
        first = last = None
        cpu_first = cpu_last = 0.0
        pieces = []
        for chunk in llm.create_chat_completion(messages=chat(request), stream=True, max_tokens=tokens,
                                                temperature=0.0, seed=42):
            text = chunk["choices"][0].get("delta", {}).get("content")
            if text:
                last = time.perf_counter()
                cpu_last = time.process_time()
                if first is None:
                    first, cpu_first = last, cpu_last
                pieces.append(text)
        n = len(llm.tokenize("".join(pieces).encode(), add_bos=False, special=False))
        if i == 0:
            continue
        jobs.append({
            "first_token_ms": (first - start) * 1000 if first else None,
            "tokens_per_s": (n - 1) / (last - first) if first and last and last > first and n > 1 else None,
            "completion_tokens": n,
            "cpu_ms_per_token": (cpu_last - cpu_first) * 1000 / (n - 1) if n > 1 else None,
            "prompt_evaluated": evals[0] if evals else 0,
        })
    return {"load_ms": load_ms, "jobs": jobs, "system_info": llama_cpp.llama_print_system_info().decode()}


def run_raw(build: str | None, threads: int, tokens: int, reuse: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (build, str(REPO)) if x)
    args = [sys.executable, __file__, "--worker", "raw", "--threads", str(threads), "--tokens", str(tokens)]
    if not reuse:
        args.append("--no-reuse")
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"raw worker failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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


async def _pipeline(build: str | None, threads: int | None, tokens: int) -> dict[str, Any]:
    import trio

    from atomic import config
    from atomic.ipc import messages as m
    from atomic.ipc.connection import open_connection

    tmp = tempfile.mkdtemp(prefix="atomic-bl-")
    sock = f"{tmp}/agent.sock"
    env = dict(os.environ)
    env.update({"PYTHONPATH": os.pathsep.join(x for x in (build, str(REPO)) if x), "ATOMIC_IPC_SOCKET": sock,
                "ATOMIC_PROVIDER": "local", "ATOMIC_LOG_LEVEL": "WARNING", "ATOMIC_MAX_TOKENS": str(tokens)})
    if threads:
        env["ATOMIC_LOCAL_THREADS"] = str(threads)
    settings = config.load(env={}, overrides={"ipc_socket": sock})
    proc = subprocess.Popen([sys.executable, "-m", "atomic", "agent"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        with trio.fail_after(60):
            while not os.path.exists(sock):
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
                await trio.sleep(0.05)
            conn = await open_connection(settings)
        await conn.send(m.hello())
        await conn.receive()
        jobs = []
        facts: dict[str, Any] = {}
        for i, request in enumerate([WARMUP, *REQUESTS]):
            body = {"messages": chat(request), "provider": "local", "max_tokens": tokens, "temperature": 0.0,
                    "seed": 42}
            start = time.perf_counter()
            await conn.send(m.generate(i + 1, body))
            first = last = None
            cpu_first = cpu_last = 0.0
            done: dict[str, Any] = {}
            while True:
                msg = await conn.receive()
                assert msg is not None, "agent closed the connection"
                if msg["type"] == m.TOKEN:
                    last = time.perf_counter()
                    cpu_last = cpu_s(proc.pid)
                    if first is None:
                        first, cpu_first = last, cpu_last
                elif msg["type"] == m.DONE:
                    done = msg
                    break
                elif msg["type"] == m.ERROR:
                    raise RuntimeError(f"agent error: {msg['error']}")
            await conn.send(m.ping(1000 + i))
            while True:
                pong = await conn.receive()
                assert pong is not None
                if pong["type"] == m.PONG:
                    break
            if "providers" in pong:
                facts = next(p for p in pong["providers"] if p.get("name") == "local")
            if i == 0:
                continue
            n = done["usage"]["completion_tokens"]
            jobs.append({
                "first_token_ms": (first - start) * 1000 if first else None,
                "tokens_per_s": (n - 1) / (last - first) if first and last and last > first and n > 1 else None,
                "completion_tokens": n,
                "cpu_ms_per_token": (cpu_last - cpu_first) * 1000 / (n - 1) if n > 1 else None,
                "prompt_evaluated": facts.get("last", {}).get("prompt_tokens_evaluated"),
                "agent_first_token_ms": facts.get("last", {}).get("first_token_ms"),
            })
        await conn.aclose()
        return {"jobs": jobs, "threads": facts.get("threads")}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_pipeline(build: str | None, threads: int | None, tokens: int) -> dict[str, Any]:
    import trio

    return trio.run(_pipeline, build, threads, tokens)


# --- the table -------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def measure(builds: dict[str, str | None], threads: list[int], rounds: int, tokens: int,
            pipeline_build: str, pipeline_threads: int | None,
            log: Any = lambda msg: print(msg, file=sys.stderr, flush=True)) -> dict[str, Any]:
    raw: dict[str, list[dict[str, Any]]] = {}
    pipe: list[dict[str, Any]] = []
    info: dict[str, str] = {}
    rounds_raw: dict[str, list[float]] = {}  # per round: the median over its jobs
    rounds_pipe: list[float] = []
    pipeline_threads_used = None
    for r in range(rounds):
        for name, path in builds.items():
            for t in threads:
                # Without reuse only once: it shows the prompt tokens a job evaluates then.
                for reuse in (True, False) if (name, t) == (pipeline_build, threads[0]) else (True,):
                    key = f"{name}/t{t}/{'reuse' if reuse else 'reset'}"
                    res = run_raw(path, t, tokens, reuse)
                    info[name] = res["system_info"]
                    raw.setdefault(key, []).extend(res["jobs"])
                    rounds_raw.setdefault(key, []).append(med([j["tokens_per_s"] for j in res["jobs"]]))
                    log(f"round {r + 1} raw {key}: {rounds_raw[key][-1]:.1f} tok/s")
        res = run_pipeline(builds[pipeline_build], pipeline_threads, tokens)
        pipeline_threads_used = res["threads"]
        pipe.extend(res["jobs"])
        rounds_pipe.append(med([j["tokens_per_s"] for j in res["jobs"]]))
        log(f"round {r + 1} pipeline ({pipeline_build}, threads {res['threads']}): {rounds_pipe[-1]:.1f} tok/s, "
            f"first token {med([j['first_token_ms'] for j in res['jobs']]):.1f} ms")
    rows = {}
    for key, jobs in raw.items():
        rows[key] = {"tokens_per_s": med([j["tokens_per_s"] for j in jobs]),
                     "cpu_ms_per_token": med([j["cpu_ms_per_token"] for j in jobs]),
                     "first_token_ms": med([j["first_token_ms"] for j in jobs]),
                     "prompt_evaluated": med([j["prompt_evaluated"] for j in jobs])}
    pipeline = {"tokens_per_s": med([j["tokens_per_s"] for j in pipe]),
                "cpu_ms_per_token": med([j["cpu_ms_per_token"] for j in pipe]),
                "first_token_ms": med([j["first_token_ms"] for j in pipe]),
                "agent_first_token_ms": med([j["agent_first_token_ms"] for j in pipe]),
                "prompt_evaluated": med([j["prompt_evaluated"] for j in pipe]),
                "threads": pipeline_threads_used,
                "jobs": pipe}
    best_key = max((k for k in rows if k.endswith("/reuse")), key=lambda k: rows[k]["tokens_per_s"])
    return {"raw": rows, "pipeline": pipeline, "best_raw": best_key, "system_info": info,
            "rounds_raw": rounds_raw, "rounds_pipeline": rounds_pipe, "tokens": tokens, "raw_jobs": raw,
            "rounds": rounds, "pipeline_build": pipeline_build}


def table(res: dict[str, Any]) -> str:
    lines = [f"{'':44} {'tok/s':>7} {'CPU ms/tok':>10} {'first token ms':>15} {'prompt tokens evaluated/job':>28}"]
    for key, row in sorted(res["raw"].items()):
        lines.append(f"{'raw ' + key:44} {row['tokens_per_s']:7.1f} {row['cpu_ms_per_token']:10.2f} "
                     f"{row['first_token_ms']:15.1f} {row['prompt_evaluated']:28.0f}")
    p = res["pipeline"]
    label = f"pipeline ({res['pipeline_build']}, t{p['threads']}, agent over IPC)"
    lines.append(f"{label:44} {p['tokens_per_s']:7.1f} {p['cpu_ms_per_token']:10.2f} "
                 f"{p['first_token_ms']:15.1f} {p['prompt_evaluated']:28.0f}")
    best = res["raw"][res["best_raw"]]["tokens_per_s"]
    lines.append("")
    lines.append(f"pipeline / best raw ({res['best_raw']}): {p['tokens_per_s'] / best:.2f}x (target >= 0.9x)")
    lines.append(f"first token after the agent gets the request: {p['agent_first_token_ms']:.1f} ms "
                 f"(agent's own clock), {p['first_token_ms']:.1f} ms at the client (target < 100 ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=("raw",), help=argparse.SUPPRESS)
    ap.add_argument("--no-reuse", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="1,2", help="raw thread counts (comma-separated)")
    ap.add_argument("--pipeline-threads", type=int, help="ATOMIC_LOCAL_THREADS for the agent (default: its own)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=200, help="max tokens per job")
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--pipeline-build", default="installed")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.worker == "raw":
        print(json.dumps(raw_worker(int(args.threads), args.tokens, not args.no_reuse)))
        return 0
    builds: dict[str, str | None] = {"installed": None}
    for spec in args.build:
        name, _, path = spec.partition("=")
        builds[name] = path
    res = measure(builds, [int(t) for t in args.threads.split(",")], args.rounds, args.tokens,
                  args.pipeline_build, args.pipeline_threads)
    print(table(res))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def local_figures(ctx: Any) -> list[Any]:
    """The "local model" group of benchmarks/run: the installed build, raw at 1 and 2
    threads beside the pipeline at its default threads, ``ctx.runs`` rounds."""
    from harness.report import Figure

    ctx.log(f"local model: raw llama-cpp-python (1, 2 threads) vs the agent over IPC, x{ctx.runs}")
    res = measure({"installed": None}, [1, 2], ctx.runs, 120 if ctx.quick else 200, "installed", None,
                  log=lambda msg: ctx.log("  " + msg))
    best = res["best_raw"]
    # Per round, the best raw figure of that round (the same key may not win every round).
    keys = [k for k in res["rounds_raw"] if k.endswith("/reuse")]
    best_per_round = [max(res["rounds_raw"][k][r] for k in keys) for r in range(res["rounds"])]
    p = res["pipeline"]
    details = {"raw": res["raw"], "pipeline": {k: v for k, v in p.items() if k != "jobs"},
               "best_raw": best, "system_info": res["system_info"]}
    return [
        Figure("local_tps", f"local model: pipeline tokens/s vs best raw llama.cpp ({best})", "tok/s",
               res["rounds_pipeline"], best_per_round, ">= 0.9x baseline", ("ratio>=", 0.9), details=details),
        Figure("local_first_token", "local model: first token after the agent gets the request", "ms",
               [j["agent_first_token_ms"] for j in p["jobs"]], None, "< 100 ms", ("<", 100.0)),
        Figure("local_prompt_reuse", "local model: prompt tokens evaluated per job (vs no reuse)", "tokens",
               [j["prompt_evaluated"] for j in p["jobs"]],
               [j["prompt_evaluated"] for j in res["raw_jobs"]["installed/t1/reset"]], "<= 0.5x baseline",
               ("ratio<=", 0.5)),
    ]
