"""How a job's programs are judged: its test cases and test program as one sandbox run,
and which check a failing run failed (what a repair is told).

A job's judged run (one per candidate and round) is one sandbox run of the program,
compiled once, with one case per check:

* each of the job's ``tests``, as given;
* with ``test_code`` and no ``tests``: the program itself once (it must exit 0), named
  after its entry point;
* with ``test_code``: the test program last, saved beside the program as the language's
  ``test_entrypoint`` and run the language's way (:mod:`atomic.testcode`), named after
  its file. It passes when it exits 0.

Without tests or a test program the run is a plain one (exit 0 is accepted). A candidate
passes when the run's verdict is ``accepted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..contract import CaseResult, ExecutionResult, JobSpec, TestCaseIn
from ..languages import LANGUAGES, Language
from ..sandbox.run import Case, case_of


@dataclass(frozen=True)
class Check:
    """One case of the judged run, and where it came from."""

    kind: Literal["case", "program", "test_code"]
    number: int  # 1-based, among the run's cases
    case: TestCaseIn | None = None  # kind "case": the job's test case


@dataclass(frozen=True)
class Failure:
    """The first check a judged run did not pass, with what it got."""

    check: Check
    result: CaseResult
    of: int  # how many checks the run has


@dataclass(frozen=True)
class Judging:
    """A job's checks, planned once (PARSING) and used for every candidate and round."""

    lang: Language
    checks: tuple[Check, ...]
    cases: tuple[Case, ...] | None  # None: a plain run
    test_file: tuple[str, bytes] | None
    test_code: str | None

    @classmethod
    def of(cls, spec: JobSpec) -> Judging:
        lang = LANGUAGES[spec.language]
        checks: list[Check] = []
        cases: list[Case] = []
        for case in spec.tests or ():
            checks.append(Check("case", len(checks) + 1, case))
            cases.append(case_of(case))
        test_file = None
        if spec.test_code is not None and lang.test_entrypoint is not None:
            if not cases:
                checks.append(Check("program", 1))
                cases.append(Case(name=lang.entrypoint))
            test_file = (lang.test_entrypoint, spec.test_code.encode())
            checks.append(Check("test_code", len(checks) + 1))
            cases.append(Case(name=lang.test_entrypoint, command=tuple(lang.command(lang.test_entrypoint))))
        return cls(lang, tuple(checks), tuple(cases) if cases else None, test_file, spec.test_code)

    @property
    def tested(self) -> bool:
        """Whether the job has tests or a test program (else a plain run judges it)."""
        return self.cases is not None

    def files(self, program: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """What the sandbox is given: the program's files, and the test program beside
        them (it replaces a file of that name the model may have written)."""
        if self.test_file is None:
            return program
        return [*(f for f in program if f[0] != self.test_file[0]), self.test_file]

    def failure(self, execution: ExecutionResult) -> Failure | None:
        """The first check ``execution`` did not pass (None: it passed, it did not compile,
        or it was a plain run)."""
        if execution.tests is None:
            return None
        for check, result in zip(self.checks, execution.tests, strict=False):
            if result.verdict != "accepted":
                return Failure(check, result, len(self.checks))
        return None

    @staticmethod
    def score(execution: ExecutionResult | None) -> tuple[int, int]:
        """``(passed, total)`` of a judged run: its cases, or the run itself as one case."""
        if execution is None:
            return 0, 0
        if execution.total is not None:
            return execution.passed or 0, execution.total
        return (1 if execution.verdict == "accepted" else 0), 1


__all__ = ["Check", "Failure", "Judging"]
