"""Decoding request bodies into the contract's types, with the contract's errors.

A body that is not JSON (or nested deeper than a decoder can follow) is a 400
``invalid_json``; one that is JSON but breaks a rule of its type is a 422
``validation_error`` whose message starts with the field, as the contract's clients
read it: msgspec's ``$.runs[3].files[0].path`` becomes ``runs[3].files[0].path``.
Rules a JSON Schema cannot state (paths unique and inside the workspace, the entry
point among the files, the language offered by the sandbox image) are checked after.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, TypeVar, get_args

import msgspec

from ..errors import InvalidJSON, LanguageUnavailable, ValidationError
from ..languages import LANGUAGES
from . import types
from ..testcode import check_test_code
from .requests import ExecuteRequest, JobSpec, LimitsIn, PreparedRun, TestCaseIn

T = TypeVar("T")

# What a string that fails one of the contract's patterns is missing, in words.
_PATTERN_WORDS = {
    pattern: words
    for pattern, words in (
        (get_args(types.Text)[1].pattern, "expected a string that is not blank"),
        (get_args(types.Prompt)[1].pattern, "expected a string that is not blank"),
        (get_args(types.Path)[1].pattern, "expected a relative path without backslashes or control characters"),
        (get_args(types.Word)[1].pattern, "expected a non-empty string without NUL bytes"),
        (get_args(types.Arg)[1].pattern, "expected a string without NUL bytes"),
    )
}

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_untyped = msgspec.json.Decoder()
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>.*)`$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<name>.*)`$", re.S)
# The limits a run is confined by (the compile ones apply to a compiled language's compile step).
RUN_LIMITS = ("timeout_s", "memory_mb", "cpus", "pids", "compile_timeout_s", "compile_memory_mb")


def decode_json(data: bytes | str, what: str = "the request body") -> Any:
    """``data`` as plain JSON values; 400 ``invalid_json`` when it is not JSON."""
    if not data:
        raise InvalidJSON(f"{what} is empty; a JSON object is required")
    try:
        return _untyped.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec follows nesting on the C stack; past Python's recursion limit it stops
        # (a 10 KB body of 5,000 brackets did this).
        raise InvalidJSON(f"{what} is nested too deeply to be read") from None


def decode(data: bytes | str, type_: type[T], what: str = "the request body") -> T:
    """``data`` decoded as ``type_``: 400 ``invalid_json`` or 422 naming the field."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    if not data:
        raise InvalidJSON(f"{what} is empty; a JSON object is required")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        # Typed decoding stops at the first broken rule, which may come before broken
        # JSON further on: malformed JSON is still a 400, whatever came first.
        decode_json(data, what)
        raise field_error(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidJSON(f"{what} is nested too deeply to be read") from None


def field_error(exc: msgspec.ValidationError, prefix: str = "") -> ValidationError:
    """msgspec's message as the contract's: ``field: what is wrong``."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        message, where = text, "$`"
    field = where.rstrip("`")[1:].lstrip(".")
    for pattern, replacement in ((_UNKNOWN, "unknown field"), (_MISSING, "required")):
        m = pattern.match(message)
        if m:
            name = m.group("name")
            field = f"{field}.{name}" if field else name
            message = replacement
            break
    else:
        message = message[:1].lower() + message[1:].replace("`float` that's a multiple of 1.0", "a whole number")
        for pattern, words in _PATTERN_WORDS.items():
            if message.endswith(f"matching regex {pattern!r}"):
                message = words
                break
    return ValidationError(prefix + field if field else (prefix.rstrip(".") or "body"), message.replace("`", ""))


def check_language(name: str, available: Collection[str], field: str = "language") -> None:
    """422 ``language_unavailable`` when the sandbox image does not offer ``name``.

    ``available`` empty means the image does not say (or was not asked yet): all are.
    """
    if available and name not in available:
        raise LanguageUnavailable(name, field=field)


def check_tests(tests: list[TestCaseIn] | None, output_limit: int | None, where: str = "") -> None:
    """What the schema cannot say about test cases: no ``expected_stdout`` longer than the
    server's output cap (``output_limit`` bytes), which no output could match."""
    if tests is None or output_limit is None:
        return
    for i, case in enumerate(tests):
        if case.expected_stdout is not None and len(case.expected_stdout.encode()) > output_limit:
            raise ValidationError(f"{where}tests[{i}].expected_stdout",
                                  f"longer than the output cap ({output_limit} bytes): no output could match it")


def check_job(spec: JobSpec, output_limit: int | None) -> None:
    """A generate body's rules beyond its schema (422 naming the field): the test cases'
    ``expected_stdout`` within the output cap, a test program the job's language runs and
    in that language (:mod:`atomic.testcode`), and tests only on a job that executes (and
    does not ``collect``: a judged run keeps no workspace)."""
    check_tests(spec.tests, output_limit)
    if spec.test_code is not None:
        check_test_code(spec.test_code, spec.language)
    tested = spec.tests is not None or spec.test_code is not None
    if not spec.execute and tested:
        raise ValidationError("execute", "tests and test_code judge the program in the sandbox: they need execute: true")
    if spec.collect and tested:
        raise ValidationError("collect", "the files a program writes are kept for a plain run only, not with tests "
                                         "or test_code")


def run_limits(limits: LimitsIn) -> dict[str, float | int] | None:
    """The run limits that were given, as ``resolve_limits`` takes them (None: defaults)."""
    out = {name: getattr(limits, name) for name in RUN_LIMITS if getattr(limits, name) is not None}
    return out or None


def prepare_run(
    req: ExecuteRequest, available: Collection[str] = (), where: str = "", output_limit: int | None = None
) -> PreparedRun:
    """An execute body checked beyond its schema: paths normalised, unique and inside the
    workspace; the entry point among the files (for a compiled language always, as the
    compile needs it; else unless a command is given); the language offered; no
    ``expected_stdout`` over the output cap."""
    from ..sandbox.paths import validate_path  # the one path rule, shared with the sandbox

    check_language(req.language, available, where + "language")
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for i, f in enumerate(req.files):
        try:
            path = validate_path(f.path)
        except ValidationError as exc:
            raise ValidationError(f"{where}files[{i}].path", exc.message.split(": ", 1)[-1]) from None
        if path in seen:
            raise ValidationError(f"{where}files[{i}].path", f"duplicate path {path!r}")
        seen.add(path)
        files.append((path, f.content.encode()))
    lang = LANGUAGES[req.language]
    entry = req.entrypoint if req.entrypoint is not None else lang.default_entry(p for p, _ in files)
    try:
        entry = validate_path(entry)
    except ValidationError as exc:
        raise ValidationError(where + "entrypoint", exc.message.split(": ", 1)[-1]) from None
    if entry not in seen and (req.command is None or lang.compiled):
        raise ValidationError(where + "entrypoint", f"{entry!r} is not among the files")
    check_tests(req.tests, output_limit, where)
    return PreparedRun(
        language=req.language,
        files=files,
        entrypoint=entry,
        command=None if req.command is None else list(req.command),
        args=tuple(req.args),
        stdin=req.stdin.encode(),
        limits=run_limits(req.limits),
        priority=req.priority,
        tests=req.tests,
        compare=req.compare,
    )


__all__ = ["RUN_LIMITS", "check_job", "check_language", "check_tests", "decode", "decode_json", "field_error", "prepare_run", "run_limits"]
