"""Verdicts: how a run, a test case or a compile is judged. Pure functions, no I/O.

``termination`` says how a process ended (``exited``, ``timeout``, ``oom``, ``pids``,
``output_limit``, ``cancelled``, ``error``); the verdict says what that means for the
program: ``accepted``, ``wrong_answer``, ``compile_error``, ``runtime_error`` (a non-zero
exit), or the termination itself when the sandbox stopped it.
"""

from __future__ import annotations

from typing import cast, get_args

from ..contract.types import Compare, Verdict

VERDICTS: tuple[str, ...] = get_args(Verdict)
COMPARE_MODES: tuple[str, ...] = get_args(Compare)


def same_output(expected: str, got: str, mode: str = "lines") -> bool:
    """Whether ``got`` meets ``expected`` under ``mode``.

    ``exact``: equal strings. ``lines``: equal line by line, ignoring whitespace at the end
    of each line, the kind of line ending, and blank lines at the end. ``tokens``: equal
    sequences of whitespace-separated words.
    """
    if mode == "exact":
        return expected == got
    if mode == "tokens":
        return expected.split() == got.split()
    if mode == "lines":
        return _lines(expected) == _lines(got)
    raise ValueError(f"unknown compare mode {mode!r}")


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def run_verdict(termination: str, exit_code: int | None) -> Verdict:
    """A run without expectations: accepted when it exits 0."""
    if termination != "exited":
        return cast(Verdict, termination) if termination in VERDICTS else "error"
    return "accepted" if exit_code == 0 else "runtime_error"


def case_verdict(
    termination: str,
    exit_code: int | None,
    stdout: str,
    *,
    expected_stdout: str | None = None,
    expected_exit_code: int | None = None,
    compare: str = "lines",
) -> Verdict:
    """A test case: it must end with ``expected_exit_code`` (default 0) and, when given,
    print ``expected_stdout``. A crash where 0 was expected is a ``runtime_error``; any
    other difference is a ``wrong_answer``."""
    if termination != "exited":
        return run_verdict(termination, exit_code)
    want = 0 if expected_exit_code is None else expected_exit_code
    if exit_code != want:
        return "runtime_error" if want == 0 else "wrong_answer"
    if expected_stdout is not None and not same_output(expected_stdout, stdout, compare):
        return "wrong_answer"
    return "accepted"


def compile_failed(termination: str, exit_code: int | None) -> bool:
    return termination != "exited" or exit_code != 0
