#!/usr/bin/env python
"""The IPC frame codec: pure-Python reference vs Cython twin on the same frames.

Scenarios: many small frames coalesced into 64 KiB reads (what a busy token stream looks
like), the same stream fragmented into small random reads, a realistic mix of both, and
encoding. Prints frames/s for each twin and the ratio (target: >= 3x on the mix).

    python benchmarks/bench_codec.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from atomic import _fast

MAX_FRAME = 8 << 20


def make_messages(n: int, rng: random.Random) -> list[dict]:
    words = ["def", "print(", "n", " * ", "range(1, 11)", "\n    ", "for", "return", "squares", "```"]
    out: list[dict] = []
    for i in range(n):
        if i % 50 == 49:
            out.append({"type": "done", "id": i, "text": " ".join(rng.choices(words, k=80)),
                        "usage": {"prompt_tokens": 40, "completion_tokens": 80, "total_tokens": 120,
                                  "estimated": False}, "provider": "local", "model": "smol", "finish_reason": "stop"})
        else:
            out.append({"type": "token", "id": i // 50, "text": rng.choice(words)})
    return out


def chunked(blob: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(blob):
        n = sizes[i % len(sizes)]
        out.append(blob[pos : pos + n])
        pos += n
        i += 1
    return out


def decode_all(codec, chunks: list[bytes]) -> int:
    decoder = codec.FrameDecoder(MAX_FRAME)
    need = codec.NEED_DATA
    n = 0
    for chunk in chunks:
        decoder.receive_data(chunk)
        next_frame = decoder.next_frame
        while next_frame() is not need:
            n += 1
    return n


def encode_all(codec, payloads: list[bytes]) -> int:
    encode = codec.encode_frame
    for p in payloads:
        encode(p, MAX_FRAME)
    return len(payloads)


def best_rate(fn, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    ap.add_argument("--json", metavar="PATH", help="write the results here")
    args = ap.parse_args(argv)

    twins = _fast.twins("codec")
    if len(twins) < 2:
        print("the Cython twin is not built: python setup.py build_ext --inplace", file=sys.stderr)
        return 1
    pure, fast = twins
    rng = random.Random(1)
    n = 20_000 if args.quick else 200_000
    repeat = 3 if args.quick else 5
    payloads = [pure.dumps(m) for m in make_messages(n, rng)]
    blob = b"".join(pure.encode_frame(p, MAX_FRAME) for p in payloads)
    coalesced = chunked(blob, [65536])
    fragmented = chunked(blob, [rng.randint(1, 64) for _ in range(997)])
    mixed = chunked(blob, [rng.choice([7, 40, 300, 4096, 65536]) for _ in range(997)])

    scenarios = {
        "decode coalesced (64 KiB reads)": lambda c: decode_all(c, coalesced),
        "decode fragmented (1-64 B reads)": lambda c: decode_all(c, fragmented),
        "decode mixed reads": lambda c: decode_all(c, mixed),
        "encode": lambda c: encode_all(c, payloads),
    }
    rows = []
    for name, fn in scenarios.items():
        assert fn(pure) == fn(fast) == n
        py = best_rate(lambda fn=fn: fn(pure), repeat)
        cy = best_rate(lambda fn=fn: fn(fast), repeat)
        rows.append({"scenario": name, "python_frames_per_s": py, "cython_frames_per_s": cy, "ratio": cy / py})

    # The realistic mix: a token stream read in all three shapes, plus encoding it once.
    def mix(c) -> int:
        return decode_all(c, coalesced) + decode_all(c, fragmented) + decode_all(c, mixed) + encode_all(c, payloads)

    py = best_rate(lambda: mix(pure), repeat)
    cy = best_rate(lambda: mix(fast), repeat)
    rows.append({"scenario": "realistic mix (all of the above)", "python_frames_per_s": py,
                 "cython_frames_per_s": cy, "ratio": cy / py})

    print(f"{'scenario':36} {'python f/s':>14} {'cython f/s':>14} {'ratio':>7}")
    for r in rows:
        print(f"{r['scenario']:36} {r['python_frames_per_s']:14,.0f} {r['cython_frames_per_s']:14,.0f} "
              f"{r['ratio']:6.2f}x")
    target_met = rows[-1]["ratio"] >= 3.0
    print(f"target >= 3.0x on the mix: {'met' if target_met else 'NOT met'}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"frames": n, "rows": rows, "target_met": target_met}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
