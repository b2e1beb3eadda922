"""164 Python programs shaped like HumanEval's (a typed function with a docstring, then a
``check`` of asserts run against it), about 30 lines each, made here (no data set is
downloaded). Some are wrong on purpose, so a run of them has both verdicts:
``accepted`` (exit 0) and ``runtime_error`` (a failed assert).
"""

from __future__ import annotations

N = 164

_TEMPLATES = [
    # (name, body, [(args, expected)], wrong body)
    ("sum_of_squares", "return sum(x * x for x in xs if x % {k} != 0)",
     "xs: List[int]", lambda k: [([1, 2, 3, 4], sum(x * x for x in [1, 2, 3, 4] if x % k != 0)), ([], 0)],
     "return sum(xs)"),
    ("has_close_elements", "return any(abs(a - b) < threshold + {k} * 0 for i, a in enumerate(xs) for b in xs[i + 1:])",
     "xs: List[float], threshold: float", lambda k: [([1.0, 2.0, 3.9], 0.2, False), ([1.0, 2.8, 3.0], 0.3, True)],
     "return False"),
    ("rolling_max", "out, m = [], None\n    for x in xs:\n        m = x if m is None else max(m, x)\n"
     "        out.append(m + {k} * 0)\n    return out",
     "xs: List[int]", lambda k: [([1, 3, 2, 5, 4], [1, 3, 3, 5, 5]), ([], [])],
     "return sorted(xs)"),
    ("count_vowels", "return sum(1 for c in s.lower() if c in 'aeiou') + {k} * 0",
     "s: str", lambda k: [("Hello World", 3), ("xyz", 0), ("AEIOU", 5)],
     "return len(s)"),
    ("is_palindrome", "t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1] or {k} < 0",
     "s: str", lambda k: [("A man, a plan, a canal: Panama", True), ("abc", False)],
     "return True"),
    ("fib", "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a + {k} * 0",
     "n: int", lambda k: [(10, 55), (1, 1), (20, 6765)],
     "return n"),
    ("gcd_all", "from math import gcd\n    g = 0\n    for x in xs:\n        g = gcd(g, x)\n    return g + {k} * 0",
     "xs: List[int]", lambda k: [([12, 18, 24], 6), ([7], 7), ([5, 10, 3], 1)],
     "return min(xs)"),
    ("primes_below", "sieve = [True] * max(n, 2)\n    sieve[0] = sieve[1] = False\n"
     "    for i in range(2, int(n ** 0.5) + 1):\n        if sieve[i]:\n"
     "            sieve[i * i::i] = [False] * len(sieve[i * i::i])\n    return [i for i in range(n) if sieve[i]][{k} * 0:]",
     "n: int", lambda k: [(10, [2, 3, 5, 7]), (2, []), (20, [2, 3, 5, 7, 11, 13, 17, 19])],
     "return list(range(2, n))"),
    ("word_counts", "counts: Dict[str, int] = {{}}\n    for w in text.split():\n"
     "        counts[w] = counts.get(w, 0) + 1 + {k} * 0\n    return counts",
     "text: str", lambda k: [("a b a", {"a": 2, "b": 1}), ("", {})],
     "return {}"),
    ("sort_by_length", "return sorted(words, key=lambda w: (len(w), w))[{k} * 0:]",
     "words: List[str]", lambda k: [(["ccc", "a", "bb"], ["a", "bb", "ccc"]), ([], [])],
     "return words"),
    ("digits_sum", "return sum(int(d) for d in str(abs(n))) + {k} * 0",
     "n: int", lambda k: [(123, 6), (-45, 9), (0, 0)],
     "return n"),
]


def program(i: int) -> tuple[str, bool]:
    """The ``i``-th program and whether it is meant to pass."""
    name, body, params, cases, wrong = _TEMPLATES[i % len(_TEMPLATES)]
    k = 2 + i // len(_TEMPLATES)
    passes = i % 5 != 3
    code = body.format(k=k) if passes else wrong
    checks, examples = [], []
    for case in cases(k):
        *args, expected = case
        call = f"candidate({', '.join(repr(a) for a in args)})"
        checks.append(f"    assert {call} == {expected!r}")
        examples += [f"    >>> {name}_{i}({', '.join(repr(a) for a in args)})", f"    {expected!r}"]
    lines = [
        "from typing import Dict, List",
        "",
        "",
        f"def {name}_{i}({params}):",
        f'    """Task {i}: {name.replace("_", " ")}.',
        "",
        "    The examples below are checked by check().",
        *examples,
        '    """',
        f"    {code}",
        "",
        "",
        "METADATA = {'author': 'atomic', 'dataset': 'humaneval-like'}",
        "",
        "",
        "def check(candidate):",
        *checks,
        "    assert candidate is not None",
        "",
        "",
        f"check({name}_{i})",
    ]
    return "\n".join(lines) + "\n", passes


def programs(n: int = N) -> list[tuple[str, bool]]:
    return [program(i) for i in range(n)]


if __name__ == "__main__":
    import subprocess
    import sys

    bad = 0
    for i, (src, passes) in enumerate(programs()):
        ok = subprocess.run([sys.executable, "-c", src], capture_output=True).returncode == 0
        if ok != passes:
            bad += 1
            print(f"program {i}: expected {'pass' if passes else 'fail'}\n{src}")
    lines = [len(src.splitlines()) for src, _ in programs()]
    print(f"{N} programs, {sum(p for _, p in programs())} meant to pass, {min(lines)}-{max(lines)} lines; {bad} wrong")
