"""Validation of the contract's request bodies, shared by HTTP and WebSocket.

Each parser takes the decoded JSON and returns a plain dict of normalised values, or
raises :class:`~atomic.errors.ValidationError` naming the offending field.
"""

from __future__ import annotations

from typing import Any

from ..errors import LanguageUnavailable, ValidationError
from ..languages import LANGUAGES

PRIORITIES = ("low", "normal", "high")
EXPORT_FORMATS = ("zip", "tar", "git")
LIMIT_KEYS = ("timeout_s", "memory_mb", "cpus", "pids", "compile_timeout_s", "compile_memory_mb")
INT_LIMITS = ("memory_mb", "pids", "compile_memory_mb")
MAX_PROMPT = 32000
MAX_BATCH = 64
MAX_TESTS = 64
COMPARE_MODES = ("exact", "lines", "tokens")
TEST_KEYS = {"name", "stdin", "args", "expected_stdout", "expected_exit_code"}


def _obj(body: Any, where: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(where, "expected a JSON object")
    return body


def _unknown(body: dict[str, Any], allowed: set[str], where: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise ValidationError(f"{where}{key}", "unknown field")


def _string(body: dict[str, Any], key: str, *, default: str | None = None, where: str = "") -> str | None:
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}{key}", "expected a non-empty string")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(key, "expected true or false")
    return value


def parse_limits(value: Any, field: str = "limits") -> dict[str, float | int]:
    """The per-job limits object: only known keys, positive numbers (caps applied later)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "expected an object with " + ", ".join(LIMIT_KEYS))
    out: dict[str, float | int] = {}
    for key, v in value.items():
        if key not in LIMIT_KEYS:
            raise ValidationError(f"{field}.{key}", "unknown limit; expected one of " + ", ".join(LIMIT_KEYS))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValidationError(f"{field}.{key}", "expected a number above 0")
        if key in INT_LIMITS and int(v) != v:
            raise ValidationError(f"{field}.{key}", "expected a whole number")
        out[key] = int(v) if key in INT_LIMITS else float(v)
    return out


def parse_priority(body: dict[str, Any]) -> str:
    value = body.get("priority", "normal")
    if not isinstance(value, str) or value.lower() not in PRIORITIES:
        raise ValidationError("priority", "expected one of low, normal, high")
    return value.lower()


def parse_language(body: dict[str, Any], supported: list[str] | None = None) -> str:
    """A known language (else ``validation_error``) that ``supported`` lists (else
    ``language_unavailable``: its image is not built). An empty ``supported``: all."""
    value = body.get("language", "python")
    if not isinstance(value, str) or value.lower() not in LANGUAGES:
        raise ValidationError("language", "expected one of " + ", ".join(LANGUAGES))
    name = value.lower()
    if supported and name not in supported:
        raise LanguageUnavailable(name)
    return name


def parse_generate(body: Any, *, supported: list[str] | None = None, wait: bool = False) -> dict[str, Any]:
    """A POST /api/generate body (or a WebSocket start message) as a normalised request."""
    body = _obj(body)
    _unknown(
        body,
        {"prompt", "language", "priority", "provider", "model", "execute", "limits", "export", "wait", "type",
         "collect"},
    )
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("prompt", "required, a non-empty string")
    if len(prompt) > MAX_PROMPT:
        raise ValidationError("prompt", f"at most {MAX_PROMPT} characters (got {len(prompt)})")
    export = body.get("export", ["zip"])
    if not isinstance(export, list) or not all(isinstance(x, str) for x in export):
        raise ValidationError("export", "expected a list of zip, tar, git")
    formats: list[str] = []
    for fmt in export:
        if fmt not in EXPORT_FORMATS:
            raise ValidationError("export", f"unknown format {fmt!r}; expected zip, tar or git")
        if fmt not in formats:
            formats.append(fmt)
    return {
        "prompt": prompt,
        "language": parse_language(body, supported),
        "priority": parse_priority(body),
        "provider": _string(body, "provider"),
        "model": _string(body, "model"),
        "execute": _bool(body, "execute", True),
        "limits": parse_limits(body.get("limits")),
        "export": formats,
        "wait": _bool(body, "wait", wait),
        "collect": _bool(body, "collect", False),
    }


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) and "\0" not in a for a in value):
        raise ValidationError(field, "expected a list of strings")
    return list(value)


def parse_tests(value: Any, where: str = "", output_limit: int | None = None) -> list[dict[str, Any]] | None:
    """``tests``: 1..64 cases, each {name?, stdin?, args?, expected_stdout?, expected_exit_code?}."""
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TESTS:
        got = f" (got {len(value)})" if isinstance(value, list) else ""
        raise ValidationError(where + "tests", f"expected a list of 1..{MAX_TESTS} test cases{got}")
    cases = []
    for i, case in enumerate(value):
        field = f"{where}tests[{i}]"
        case = _obj(case, field)
        _unknown(case, TEST_KEYS, field + ".")
        name = case.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
            raise ValidationError(field + ".name", "expected a non-empty string of at most 200 characters")
        for key in ("stdin", "expected_stdout"):
            if case.get(key) is not None and not isinstance(case[key], str):
                raise ValidationError(f"{field}.{key}", "expected a string")
        expected = case.get("expected_stdout")
        if expected is not None and output_limit is not None and len(expected.encode()) > output_limit:
            raise ValidationError(field + ".expected_stdout",
                                  f"longer than the output cap ({output_limit} bytes): no output could match it")
        code = case.get("expected_exit_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255):
            raise ValidationError(field + ".expected_exit_code", "expected a whole number 0..255")
        args = case.get("args")
        cases.append({
            "name": name,
            "stdin": None if case.get("stdin") is None else case["stdin"].encode(),
            "args": None if args is None else _strings(args, field + ".args"),
            "expected_stdout": expected,
            "expected_exit_code": code,
        })
    return cases


def parse_execute(
    body: Any, *, supported: list[str] | None = None, where: str = "", output_limit: int | None = None
) -> dict[str, Any]:
    """A POST /api/execute body: files, entrypoint or command, args, stdin, tests, compare, limits.

    ``command`` is the given command or None (the language's run command); ``entrypoint``
    the file it runs (for a compiled language, after compiling every source file).
    """
    from ..sandbox import validate_path  # the one path check, shared with the sandbox

    body = _obj(body, where.rstrip(".") or "body")
    _unknown(body, {"language", "files", "entrypoint", "command", "stdin", "limits", "priority", "args", "tests",
                    "compare"}, where)
    try:
        language = parse_language(body, supported)
    except LanguageUnavailable as exc:
        raise LanguageUnavailable(exc.language, field=where + "language") from None
    except ValidationError as exc:
        raise ValidationError(where + "language", exc.message.split(": ", 1)[1]) from None
    files = body.get("files", [])
    if not isinstance(files, list) or not files:
        raise ValidationError(where + "files", "expected a non-empty list of {path, content}")
    out_files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not isinstance(f.get("content"), str):
            raise ValidationError(f"{where}files[{i}]", "expected {\"path\": string, \"content\": string}")
        try:
            path = validate_path(f["path"])
        except ValidationError as exc:
            raise ValidationError(f"{where}files[{i}].path", exc.message.split(": ", 1)[-1]) from None
        if path in seen:
            raise ValidationError(f"{where}files[{i}].path", f"duplicate path {path!r}")
        seen.add(path)
        out_files.append((path, f["content"].encode()))
    entry = body.get("entrypoint")
    command = body.get("command")
    if entry is not None and command is not None:
        raise ValidationError(where + "command", "give either entrypoint or command, not both")
    lang = LANGUAGES[language]
    if command is not None:
        if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
            raise ValidationError(where + "command", "expected a non-empty list of strings")
        command = list(command)
    if entry is None:
        entry = lang.default_entry(p for p, _ in out_files)
    if not isinstance(entry, str):
        raise ValidationError(where + "entrypoint", "expected a file path")
    try:
        entry = validate_path(entry)
    except ValidationError as exc:
        raise ValidationError(where + "entrypoint", exc.message.split(": ", 1)[-1]) from None
    if entry not in seen and (command is None or lang.compiled):
        raise ValidationError(where + "entrypoint", f"{entry!r} is not among the files")
    stdin = body.get("stdin", "")
    if not isinstance(stdin, str):
        raise ValidationError(where + "stdin", "expected a string")
    compare = body.get("compare", "lines")
    if compare not in COMPARE_MODES:
        raise ValidationError(where + "compare", "expected one of " + ", ".join(COMPARE_MODES))
    try:
        limits = parse_limits(body.get("limits"), where + "limits")
        priority = parse_priority(body)
    except ValidationError as exc:
        if where and not exc.field.startswith(where):
            raise ValidationError(where + exc.field, exc.message.split(": ", 1)[1]) from None
        raise
    return {
        "language": language,
        "files": out_files,
        "command": command,
        "entrypoint": entry,
        "args": _strings(body.get("args", []), where + "args"),
        "stdin": stdin.encode(),
        "tests": parse_tests(body.get("tests"), where, output_limit),
        "compare": compare,
        "limits": limits,
        "priority": priority,
    }


def parse_batch(
    body: Any, *, supported: list[str] | None = None, output_limit: int | None = None
) -> list[dict[str, Any]]:
    body = _obj(body)
    _unknown(body, {"runs"})
    runs = body.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValidationError("runs", f"expected a list of 1..{MAX_BATCH} execute bodies")
    if len(runs) > MAX_BATCH:
        raise ValidationError("runs", f"at most {MAX_BATCH} runs (got {len(runs)})")
    return [parse_execute(r, supported=supported, where=f"runs[{i}].", output_limit=output_limit)
            for i, r in enumerate(runs)]
