"""Request bodies: ``POST /api/generate`` (and the WebSocket start message),
``POST /api/execute`` and ``/api/execute/batch``.

Every body forbids unknown fields (a typo is a 422 naming it, not a silent default).
Fields of the 2026-12-01 additions whose behaviour other parts build (test cases,
samples, compile limits...) are validated and carried here already; they never cause
a 500.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from .types import (
    Arg,
    CaseName,
    Compare,
    ExitCode,
    ExportFormat,
    LanguageName,
    MemoryMb,
    NonNegInt,
    Path,
    Pids,
    Priority,
    Prompt,
    Samples,
    Seed,
    Text,
    Whole,
    Word,
)

TIMEOUT = Annotated[float, Meta(ge=0.001, description="seconds; capped by the server's maximum")]


# Frozen (one shared default instance); Whole's conversion works on frozen Structs too.
class LimitsIn(Whole, forbid_unknown_fields=True, omit_defaults=True, frozen=True, gc=False):  # type: ignore[misc]
    """Per-run sandbox limits; each is capped by the server's maximum, unset ones default."""

    timeout_s: TIMEOUT | None = None
    memory_mb: MemoryMb | None = None
    cpus: Annotated[float, Meta(ge=0.01, description="capped by the server's maximum")] | None = None
    pids: Pids | None = None
    compile_timeout_s: TIMEOUT | None = None
    compile_memory_mb: MemoryMb | None = None


class TestCaseIn(Whole, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One test case: the program runs once per case, after one compile."""

    __test__ = False  # not a pytest class, whatever its name says

    name: CaseName | None = None
    stdin: str | None = None
    args: list[Arg] | None = None
    expected_stdout: str | None = None
    expected_exit_code: ExitCode | None = None


NO_LIMITS = LimitsIn()  # shared: a job that sets no limits stores none of its own

#: Test cases one run may have; an ``expected_stdout`` may also not exceed the server's
#: output cap (checked after decoding: no output could match it).
MAX_TESTS = 64
TestCases = Annotated[list[TestCaseIn], Meta(min_length=1, max_length=MAX_TESTS)]
#: Characters a job's test program may have.
MAX_TEST_CODE = 100_000


class JobSpec(Whole, forbid_unknown_fields=True, gc=False):
    """What a job was asked to do: the generate body as a job document shows it (no ``wait``)."""

    prompt: Prompt
    language: LanguageName = "python"
    priority: Priority = "normal"
    provider: Text | None = None
    model: Text | None = None
    execute: bool = True
    limits: LimitsIn = NO_LIMITS
    export: tuple[ExportFormat, ...] = ("zip",)
    collect: Annotated[bool, Meta(description="keep the files the program writes (`outputs`)")] = False
    tests: TestCases | None = None
    test_code: Annotated[str, Meta(max_length=MAX_TEST_CODE, description=(
        "a test program in the job's language, saved beside the program and run after it; passes when it exits "
        "0 (python: test_main.py, javascript: test_main.js, shell: test_main.sh, java: TestMain.java)"))] | None = None
    samples: Samples = 1
    repairs: Annotated[NonNegInt, Meta(description="repair rounds; default and cap: the server's")] | None = None
    temperature: Annotated[float, Meta(ge=0)] | None = None
    seed: Annotated[Seed, Meta(description="sample i uses seed + i")] | None = None
    judge_all: Annotated[bool, Meta(description="judge every candidate to the end")] = False


class GenerateRequest(JobSpec, forbid_unknown_fields=True, gc=False):
    """``POST /api/generate`` and the WebSocket start message."""

    wait: Annotated[bool, Meta(description="answer only once the job has ended (default false)")] | UnsetType = UNSET

    def spec(self) -> JobSpec:
        """The request as the job keeps it: itself, without ``wait`` (taken out, so the
        job document's ``request`` does not show it; no copy made)."""
        self.wait = UNSET
        return self


class FileIn(Struct, forbid_unknown_fields=True, gc=False):
    path: Path
    content: str


class ExecuteRequest(Struct, forbid_unknown_fields=True, gc=False):
    """``POST /api/execute``, and each run of a batch."""

    files: Annotated[list[FileIn], Meta(min_length=1)]
    language: LanguageName = "python"
    entrypoint: Path | None = None
    command: Annotated[list[Word], Meta(min_length=1)] | None = None
    stdin: str = ""
    args: tuple[Arg, ...] = ()
    limits: LimitsIn = NO_LIMITS
    priority: Priority = "normal"
    tests: TestCases | None = None
    compare: Compare = "lines"


class BatchRequest(Struct, forbid_unknown_fields=True, gc=False):
    runs: Annotated[list[ExecuteRequest], Meta(min_length=1, max_length=64)]


class PreparedRun(Struct, gc=False):
    """An execute body after the checks a schema cannot state: paths normalised and
    unique, the entry point among the files. ``command`` is the one given, or None for
    the language's own (after its compile, for a compiled language)."""

    language: str
    files: list[tuple[str, bytes]]
    entrypoint: str
    command: list[str] | None
    args: tuple[str, ...]
    stdin: bytes
    limits: dict[str, float | int] | None
    priority: str
    tests: list[TestCaseIn] | None = None
    compare: str = "lines"


__all__ = [
    "MAX_TESTS",
    "MAX_TEST_CODE",
    "BatchRequest",
    "ExecuteRequest",
    "FileIn",
    "GenerateRequest",
    "JobSpec",
    "LimitsIn",
    "PreparedRun",
    "TestCaseIn",
]
