"""Capped exponential backoff, the one recipe every retry loop in Atomic uses."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0: the first): ``base * 2**attempt``,
    at most ``cap``. With ``rng``, "equal jitter": a uniform draw from the upper half of
    that, so peers that failed together spread out, yet none retries at once."""
    ceiling = min(cap, base * 2 ** min(attempt, 32))
    if rng is None:
        return ceiling
    return ceiling * (0.5 + 0.5 * rng.random())
