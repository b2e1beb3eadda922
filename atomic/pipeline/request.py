"""Validation of the contract's request bodies, shared by HTTP and WebSocket.

Each parser takes the decoded JSON and returns a plain dict of normalised values, or
raises :class:`~atomic.errors.ValidationError` naming the offending field.
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from .languages import LANGUAGES

PRIORITIES = ("low", "normal", "high")
EXPORT_FORMATS = ("zip", "tar", "git")
LIMIT_KEYS = ("timeout_s", "memory_mb", "cpus", "pids")
MAX_PROMPT = 32000
MAX_BATCH = 64


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
        raise ValidationError(field, "expected an object with timeout_s, memory_mb, cpus, pids")
    out: dict[str, float | int] = {}
    for key, v in value.items():
        if key not in LIMIT_KEYS:
            raise ValidationError(f"{field}.{key}", "unknown limit; expected one of " + ", ".join(LIMIT_KEYS))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ValidationError(f"{field}.{key}", "expected a number above 0")
        if key in ("memory_mb", "pids") and int(v) != v:
            raise ValidationError(f"{field}.{key}", "expected a whole number")
        out[key] = int(v) if key in ("memory_mb", "pids") else float(v)
    return out


def parse_priority(body: dict[str, Any]) -> str:
    value = body.get("priority", "normal")
    if not isinstance(value, str) or value.lower() not in PRIORITIES:
        raise ValidationError("priority", "expected one of low, normal, high")
    return value.lower()


def parse_language(body: dict[str, Any], supported: list[str] | None = None) -> str:
    value = body.get("language", "python")
    names = supported or sorted(LANGUAGES)
    if not isinstance(value, str) or value.lower() not in names:
        raise ValidationError("language", "expected one of " + ", ".join(names))
    return value.lower()


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


def parse_execute(body: Any, *, supported: list[str] | None = None, where: str = "") -> dict[str, Any]:
    """A POST /api/execute body: files, entrypoint or command, stdin, limits."""
    from ..sandbox import validate_path  # the one path check, shared with the sandbox

    body = _obj(body, where.rstrip(".") or "body")
    _unknown(body, {"language", "files", "entrypoint", "command", "stdin", "limits", "priority"}, where)
    try:
        language = parse_language(body, supported)
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
        argv = list(command)
    else:
        if entry is None:
            entry = lang.entrypoint if lang.entrypoint in seen else out_files[0][0]
        if not isinstance(entry, str):
            raise ValidationError(where + "entrypoint", "expected a file path")
        try:
            entry = validate_path(entry)
        except ValidationError as exc:
            raise ValidationError(where + "entrypoint", exc.message.split(": ", 1)[-1]) from None
        if entry not in seen:
            raise ValidationError(where + "entrypoint", f"{entry!r} is not among the files")
        argv = lang.command(entry)
    stdin = body.get("stdin", "")
    if not isinstance(stdin, str):
        raise ValidationError(where + "stdin", "expected a string")
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
        "command": argv,
        "stdin": stdin.encode(),
        "limits": limits,
        "priority": priority,
    }


def parse_batch(body: Any, *, supported: list[str] | None = None) -> list[dict[str, Any]]:
    body = _obj(body)
    _unknown(body, {"runs"})
    runs = body.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValidationError("runs", f"expected a list of 1..{MAX_BATCH} execute bodies")
    if len(runs) > MAX_BATCH:
        raise ValidationError("runs", f"at most {MAX_BATCH} runs (got {len(runs)})")
    return [parse_execute(r, supported=supported, where=f"runs[{i}].") for i, r in enumerate(runs)]
