"""pass@k against values computed independently (exact binomials with fractions)."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from atomic.eval.estimator import ks_for, mean_pass_at_k, pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", range(1, 11))
def test_every_small_case_matches_the_exact_binomials(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(exact(n, c, k)), abs=1e-12), (n, c, k)


def test_edges() -> None:
    assert pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(1, 1, 1) == 1.0
    for n in (1, 4, 8, 200):
        assert pass_at_k(n, 0, 1) == 0.0  # c = 0: never
        assert pass_at_k(n, n, 1) == 1.0  # c = n: always
        assert pass_at_k(n, n, n) == 1.0
    # pass@1 is the fraction of samples that pass.
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    # Known values: n=4, c=1: pass@2 = 1 - C(3,2)/C(4,2) = 1/2; n=10, c=2: pass@5 = 1 - C(8,5)/C(10,5) = 7/9.
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(10, 2, 5) == pytest.approx(7 / 9)
    # n - c < k: every draw holds a passing sample.
    assert pass_at_k(5, 3, 3) == 1.0


def test_large_n_is_stable() -> None:
    # C(2000, 1000) overflows a float; the product form does not.
    value = pass_at_k(2000, 3, 1000)
    assert value == pytest.approx(float(exact(2000, 3, 1000)), rel=1e-12)
    assert 0.0 < value < 1.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 0)


def test_ks_and_mean() -> None:
    assert ks_for(1) == [1]
    assert ks_for(4) == [1, 2, 4]
    assert ks_for(5) == [1, 2, 4, 5]
    assert ks_for(8) == [1, 2, 4, 8]
    assert mean_pass_at_k([(4, 0), (4, 4), (4, 1)], 1) == pytest.approx((0 + 1 + 0.25) / 3)
    # A task with fewer samples than k is left out of pass@k.
    assert mean_pass_at_k([(4, 1), (1, 1)], 2) == pytest.approx(0.5)
    assert mean_pass_at_k([(1, 1)], 2) is None


def test_progress_and_table() -> None:
    import io

    from atomic.eval.report import Progress, summarize, table

    out = io.StringIO()
    bar = Progress(4, already=1, out=out, tty=True)
    bar.record({"task_id": "a", "n": 2, "c": 1, "error": None})
    bar.record({"task_id": "b", "n": 0, "c": 0, "error": {"code": "validation_error", "message": "x"}})
    text = out.getvalue()
    assert text.startswith("\r[") and "3/4 tasks" in text and "solved 1/2" in text and "errors 1" in text
    assert "tasks/min" in text and "ETA" in text
    plain = io.StringIO()
    Progress(2, out=plain, tty=False).record({"task_id": "a", "n": 4, "c": 3})
    assert plain.getvalue() == "1/2 a: 3/4 accepted\n"
    summary = summarize([{"n": 4, "c": 3, "samples": [{"verdict": "accepted"}] * 3 + [{"verdict": "timeout"}]}],
                        tasks=1, samples=4, extra={"repairs": 0})
    assert summary["pass@k"] == {"1": 0.75, "2": 1.0, "4": 1.0}
    assert summary["verdicts"] == {"accepted": 3, "timeout": 1}
    shown = table(summary)
    assert " 75.00%" in shown and "100.00%" in shown and "accepted 3, timeout 1" in shown
