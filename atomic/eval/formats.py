"""Task files: HumanEval, MBPP and Atomic's own form, in JSONL or ``.jsonl.gz``.

Every form becomes a :class:`Task`: the prompt the model is given and the tests that
judge it, in the contract's generate fields (``tests`` and/or ``test_code``). HumanEval
and MBPP are Python function tasks; they are framed as a whole file ``main.py`` that a
test program imports (``from main import *``), because that is what ``test_code`` runs
(``test_main.py`` beside the program, passing when it exits 0).

A bad line is reported with its line number and the rest of the file is still read.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TESTS = 64
TEST_CASE_KEYS = frozenset({"name", "stdin", "args", "expected_stdout", "expected_exit_code"})


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # what the model is asked
    language: str
    tests: tuple[dict[str, Any], ...] | None
    test_code: str | None
    form: str  # "humaneval" | "mbpp" | "atomic"
    line: int


@dataclass(frozen=True)
class BadLine:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class TaskError(ValueError):
    """One line that is not a task; the message says why."""


def open_text(path: str | Path) -> Any:
    """The file as text lines, gunzipped when it ends in ``.gz``."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8")
    return p.open("r", encoding="utf-8")


def read_tasks(path: str | Path, default_language: str = "python") -> tuple[list[Task], list[BadLine]]:
    """Every task in the file, and every line that is not one (blank lines are skipped)."""
    tasks: list[Task] = []
    bad: list[BadLine] = []
    seen: dict[str, int] = {}
    with open_text(path) as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise TaskError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
                task = parse_task(obj, number, default_language)
                if task.task_id in seen:
                    raise TaskError(f"task_id {task.task_id!r} already used on line {seen[task.task_id]}")
            except TaskError as exc:
                bad.append(BadLine(number, str(exc)))
                continue
            seen[task.task_id] = number
            tasks.append(task)
    return tasks, bad


def parse_task(obj: Any, line: int = 0, default_language: str = "python") -> Task:
    """One decoded JSON line as a task, whichever form it is in."""
    if not isinstance(obj, dict):
        raise TaskError("expected a JSON object")
    task_id = obj.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)  # MBPP numbers its tasks
    if not isinstance(task_id, str) or not task_id.strip():
        raise TaskError("task_id: expected a non-empty string")
    if "entry_point" in obj or "canonical_solution" in obj:
        return _humaneval(obj, task_id, line)
    if "test_list" in obj:
        return _mbpp(obj, task_id, line)
    return _atomic(obj, task_id, line, default_language)


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"{key}: expected a non-empty string")
    return value


# --- HumanEval ---------------------------------------------------------------------------

HUMANEVAL_PROMPT = """\
Complete this Python function. Answer with the whole file main.py: the imports it needs, \
the function `{entry_point}` with exactly this signature (and any helper functions shown), \
and its body. The file must read no input and print nothing: a test program imports it \
(`from main import *`) and calls `{entry_point}`.

```python
{prompt}
```
"""


def humaneval_test_code(test: str, entry_point: str) -> str:
    """HumanEval's ``check(candidate)`` run against the program's function."""
    return f"from main import *  # noqa: F403\n\n{test.strip()}\n\n\ncheck({entry_point})\n"


def _humaneval(obj: dict[str, Any], task_id: str, line: int) -> Task:
    prompt = _text(obj, "prompt")
    test = _text(obj, "test")
    entry = _text(obj, "entry_point")
    if not entry.isidentifier():
        raise TaskError(f"entry_point: {entry!r} is not a Python name")
    return Task(
        task_id=task_id,
        prompt=HUMANEVAL_PROMPT.format(entry_point=entry, prompt=prompt.rstrip()),
        language="python",
        tests=None,
        test_code=humaneval_test_code(test, entry),
        form="humaneval",
        line=line,
    )


# --- MBPP --------------------------------------------------------------------------------

MBPP_PROMPT = """\
{text}
Write it in Python as the whole file main.py, with a function named `{name}`. The file must \
read no input and print nothing: a test program imports it (`from main import *`) and runs \
checks such as:

```python
{example}
```
"""

_CALLED = re.compile(r"^\s*assert\s+(?:not\s+)?\(?\s*(?:set\(|sorted\(|math\.isclose\()?\s*([A-Za-z_]\w*)\s*\(")


def mbpp_function_name(test_list: list[str]) -> str:
    """The function the asserts call: the first name called in the first assert."""
    for test in test_list:
        match = _CALLED.match(test)
        if match:
            return match.group(1)
    raise TaskError("test_list: no assert calls a function (expected `assert name(...) == ...`)")


def mbpp_test_code(test_list: list[str], setup: str = "") -> str:
    body = "\n".join(t.strip() for t in test_list)
    setup = setup.strip()
    return f"from main import *  # noqa: F403\n{setup + chr(10) if setup else ''}\n{body}\n"


def _mbpp(obj: dict[str, Any], task_id: str, line: int) -> Task:
    text = _text(obj, "text")
    tests = obj.get("test_list")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise TaskError("test_list: expected a non-empty list of assert statements")
    setup = obj.get("test_setup_code", "") or ""
    if not isinstance(setup, str):
        raise TaskError("test_setup_code: expected a string")
    name = mbpp_function_name(tests)
    return Task(
        task_id=task_id,
        prompt=MBPP_PROMPT.format(text=text.strip(), name=name, example=tests[0].strip()),
        language="python",
        tests=None,
        test_code=mbpp_test_code(tests, setup),
        form="mbpp",
        line=line,
    )


# --- Atomic ------------------------------------------------------------------------------


def _atomic(obj: dict[str, Any], task_id: str, line: int, default_language: str) -> Task:
    prompt = _text(obj, "prompt")
    language = obj.get("language", default_language)
    if not isinstance(language, str) or not language.strip():
        raise TaskError("language: expected a non-empty string")
    tests = obj.get("tests")
    test_code = obj.get("test_code")
    if tests is None and test_code is None:
        raise TaskError("expected tests or test_code (or HumanEval's entry_point, or MBPP's test_list)")
    cases: tuple[dict[str, Any], ...] | None = None
    if tests is not None:
        if not isinstance(tests, list) or not tests:
            raise TaskError("tests: expected a non-empty list of cases")
        if len(tests) > MAX_TESTS:
            raise TaskError(f"tests: at most {MAX_TESTS} cases (got {len(tests)})")
        for i, case in enumerate(tests):
            if not isinstance(case, dict):
                raise TaskError(f"tests[{i}]: expected an object")
            unknown = sorted(set(case) - TEST_CASE_KEYS)
            if unknown:
                raise TaskError(f"tests[{i}].{unknown[0]}: unknown field")
            for key in ("name", "stdin", "expected_stdout"):
                if key in case and not isinstance(case[key], str):
                    raise TaskError(f"tests[{i}].{key}: expected a string")
            if "args" in case and not (
                isinstance(case["args"], list) and all(isinstance(a, str) for a in case["args"])
            ):
                raise TaskError(f"tests[{i}].args: expected a list of strings")
            code = case.get("expected_exit_code")
            if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
                raise TaskError(f"tests[{i}].expected_exit_code: expected a whole number")
        cases = tuple(dict(c) for c in tests)
    if test_code is not None and (not isinstance(test_code, str) or not test_code.strip()):
        raise TaskError("test_code: expected a non-empty string")
    return Task(
        task_id=task_id,
        prompt=prompt,
        language=language.strip().lower(),
        tests=cases,
        test_code=test_code,
        form="atomic",
        line=line,
    )
