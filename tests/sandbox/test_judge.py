"""Verdicts and compare modes (atomic/sandbox/judge.py) and how a result is assembled: no engine."""

from __future__ import annotations

import msgspec
import pytest

from atomic.sandbox.judge import case_verdict, run_verdict, same_output
from atomic.contract import ExecutionResult
from atomic.sandbox.run import StepResult, case_result, judged, plain_result


@pytest.mark.parametrize("expected, got, exact, lines, tokens", [
    ("1 2\n", "1 2\n", True, True, True),
    ("1 2\n", "1 2", False, True, True),
    ("1 2", "1 2  \n\n\n", False, True, True),
    ("a\nb\n", "a\r\nb\r\n", False, True, True),
    ("1 2\n", "1  2\n", False, False, True),
    ("1\n2\n", "1 2\n", False, False, True),
    ("1\n\n2\n", "1\n2\n", False, False, True),
    ("1 2\n", "1 3\n", False, False, False),
    ("", "\n\n", False, True, True),
    (" x\n", "x\n", False, False, True),  # leading whitespace counts for lines
])
def test_compare_modes(expected, got, exact, lines, tokens):
    assert same_output(expected, got, "exact") is exact
    assert same_output(expected, got, "lines") is lines
    assert same_output(expected, got, "tokens") is tokens
    with pytest.raises(ValueError):
        same_output(expected, got, "fuzzy")


def test_run_verdicts():
    assert run_verdict("exited", 0) == "accepted"
    assert run_verdict("exited", 1) == "runtime_error"
    for t in ("timeout", "oom", "pids", "output_limit", "cancelled", "error"):
        assert run_verdict(t, None) == t


def test_case_verdicts():
    assert case_verdict("exited", 0, "4\n", expected_stdout="4") == "accepted"
    assert case_verdict("exited", 0, "5\n", expected_stdout="4") == "wrong_answer"
    assert case_verdict("exited", 1, "4\n", expected_stdout="4") == "runtime_error"
    assert case_verdict("exited", 3, "", expected_exit_code=3) == "accepted"
    assert case_verdict("exited", 0, "", expected_exit_code=3) == "wrong_answer"
    assert case_verdict("exited", 2, "", expected_exit_code=3) == "wrong_answer"
    assert case_verdict("exited", 0, "", expected_exit_code=0) == "accepted"
    assert case_verdict("timeout", None, "4\n", expected_stdout="4") == "timeout"
    assert case_verdict("exited", 0, "4 \n", expected_stdout="4", compare="exact") == "wrong_answer"


def step(out: str = "", code: int | None = 0, termination: str = "exited") -> StepResult:
    return StepResult(code, out, "", 1.0, termination, False)


def as_json(result: ExecutionResult) -> dict:
    """The result as the contract's clients read it."""
    return msgspec.json.decode(msgspec.json.encode(result))


def test_top_level_fields_are_the_first_failing_case():
    cases = [case_result("a", "accepted", step("1")), case_result(None, "wrong_answer", step("2")),
             case_result("c", "timeout", step("3", None, "timeout"))]
    d = as_json(judged(None, cases, tests=3))
    assert (d["verdict"], d["stdout"], d["passed"], d["total"]) == ("wrong_answer", "2", 1, 3)
    assert [t["verdict"] for t in d["tests"]] == ["accepted", "wrong_answer", "timeout"]
    assert d["tests"][1]["name"] is None and d["compile"] is None
    assert set(d["tests"][0]) == {"name", "verdict", "exit_code", "stdout", "stderr", "duration_ms", "termination",
                                  "truncated"}


def test_all_accepted_takes_the_last_case_and_plain_runs_have_no_tests():
    ok = [case_result(None, "accepted", step("1")), case_result(None, "accepted", step("2"))]
    d = as_json(judged(step("built"), ok, tests=2))
    assert (d["verdict"], d["stdout"], d["passed"]) == ("accepted", "2", 2)
    assert d["compile"] == {"exit_code": 0, "stdout": "built", "stderr": "", "duration_ms": 1.0,
                            "termination": "exited"}
    plain = as_json(judged(None, [case_result(None, "runtime_error", step("", 2))], tests=None))
    assert plain["verdict"] == "runtime_error" and plain["tests"] is None and plain["total"] is None


def test_a_failed_compile_has_no_runs():
    broken = StepResult(1, "", "main.c:1: error", 20.0, "exited", False)
    d = as_json(judged(broken, [], tests=3))
    assert d["verdict"] == "compile_error" and d["tests"] == [] and (d["passed"], d["total"]) == (0, 3)
    assert d["stderr"] == "main.c:1: error" and d["compile"]["exit_code"] == 1
    bomb = StepResult(None, "", "", 2000.0, "timeout", False)
    d = as_json(judged(bomb, [], tests=None))
    assert (d["verdict"], d["compile"]["termination"]) == ("compile_error", "timeout") and d["tests"] is None


def test_a_plain_result_judges_itself():
    assert plain_result(step()).verdict == "accepted"
    assert as_json(plain_result(step("", None, "oom")))["verdict"] == "oom"
    assert plain_result(step("", 3)).verdict == "runtime_error"
