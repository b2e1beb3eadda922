"""pass@k by the unbiased estimator (Chen et al., 2021, "Evaluating Large Language Models
Trained on Code"): with n samples of which c pass, the chance that at least one of k drawn
without replacement passes is 1 - C(n-c, k) / C(n, k).

The binomials overflow floats for large n, so the ratio is taken as a running product:
C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i).
"""

from __future__ import annotations

from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples (of n, c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n (got n={n}, c={c})")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n (got n={n}, k={k})")
    if n - c < k:
        return 1.0  # every draw of k holds a correct one
    ratio = 1.0
    for i in range(n - c + 1, n + 1):
        ratio *= 1.0 - k / i
    return 1.0 - ratio


def ks_for(samples: int) -> list[int]:
    """The k reported for ``samples`` per task: 1, every power of two up to it, and itself."""
    if samples < 1:
        raise ValueError("samples must be at least 1")
    ks = {samples}
    k = 1
    while k <= samples:
        ks.add(k)
        k *= 2
    return sorted(ks)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """The mean of pass@k over tasks given as (n, c); tasks with fewer than k samples are
    left out. None when no task has k samples."""
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return sum(values) / len(values) if values else None
