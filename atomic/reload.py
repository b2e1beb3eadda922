"""SIGHUP reload of the settings that can change while serving.

``systemctl reload atomic`` (``kill -HUP``) re-reads the settings the way start-up did
(file, ``ATOMIC_*`` environment, the same command-line flags). Settings that only steer
what happens next — log level and format, sandbox limits and their maxima, CORS origins,
API keys, rate limits, retention, repair attempts, model sampling — are applied; the rest (ports,
paths, pool sizes, the agent mode...) are left as they are and named in the log as
needing a restart. A file that does not validate changes nothing: each bad line is
logged and the running settings stay.

The agent child reads its provider keys from its own environment; on SIGHUP the server
forwards the signal to it, and it re-reads the environment file named by
``ATOMIC_ENV_FILE`` (the unit sets ``/etc/atomic/atomic.env``). :func:`read_env_file` and
:func:`provider_env_changes` tell which provider variables that file changed, by name
only, so the agent can rebuild just those providers and log what it did.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import signal
from collections.abc import Callable, Mapping
from typing import Any

import trio

from . import logs
from .config import Settings
from .errors import ConfigError
from .notify import Notifier

log = logging.getLogger(__name__)

_RELOADABLE = frozenset(
    {
        "log_level",
        "log_format",
        "default_memory_mb",
        "memory_limit_mb",
        "timeout_s",
        "max_timeout_s",
        "cpus",
        "max_cpus",
        "pids",
        "max_pids",
        "output_limit_bytes",
        "compile_timeout_s",
        "max_compile_timeout_s",
        "compile_memory_mb",
        "max_compile_memory_mb",
        "cors_origins",
        "api_keys",
        "retention_days",
        "repair_attempts",
        "max_tokens",
        "temperature",
        "rate_limit",
        "rate_burst",
    }
)

# Settings whose values are never logged.
SECRET_SETTINGS = frozenset({"api_keys", "ipc_token"})

# Environment variables the providers read (atomic/agent/providers/*): vendor SDK
# variables and our per-provider model names.
PROVIDER_ENV_PREFIXES = (
    "OPENAI_",
    "AZURE_OPENAI_",
    "ANTHROPIC_",
    "AWS_",
    "OLLAMA_",
    "ATOMIC_OPENAI_",
    "ATOMIC_AZURE_",
    "ATOMIC_ANTHROPIC_",
    "ATOMIC_BEDROCK_",
    "ATOMIC_OLLAMA_",
)

Changes = dict[str, tuple[Any, Any]]


def reloadable() -> frozenset[str]:
    """Names of the settings a SIGHUP applies without a restart."""
    return _RELOADABLE


def plan_reload(old: Settings, new: Settings) -> tuple[Changes, list[str]]:
    """What a reload from ``old`` to ``new`` does.

    Returns the reloadable settings that changed (name -> (old, new)) and the names of
    the changed settings that need a restart, both in declaration order.
    """
    applied: Changes = {}
    restart: list[str] = []
    for f in dataclasses.fields(Settings):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before == after:
            continue
        if f.name in _RELOADABLE:
            applied[f.name] = (before, after)
        else:
            restart.append(f.name)
    return applied, restart


def merge(old: Settings, applied: Changes) -> Settings:
    """``old`` with the ``applied`` changes: the settings in effect after a reload.

    Every cross-check in :func:`atomic.config.load` pairs a default with its maximum,
    and both of each pair are reloadable, so the merge is as valid as ``new`` was.
    """
    return old.replace(**{name: after for name, (_, after) in applied.items()})


def show(name: str, value: Any) -> str:
    """A value as the log shows it: secrets as a count, never their text."""
    if name in SECRET_SETTINGS:
        n = len(value) if isinstance(value, (tuple, list)) else int(bool(value))
        return f"<{n} secret{'s' if n != 1 else ''}>"
    if isinstance(value, tuple):
        return ",".join(value) or "(empty)"
    return str(value)


def describe(applied: Changes, restart: list[str]) -> str:
    """The one log line a reload writes."""
    if applied:
        done = ", ".join(f"{k} {show(k, a)} -> {show(k, b)}" for k, (a, b) in applied.items())
    else:
        done = "nothing"
    line = f"settings reloaded: applied {done}"
    if restart:
        line += f"; ignored (need a restart): {', '.join(restart)}"
    return line


def apply_logging(settings: Settings, applied: Changes) -> None:
    """Apply ``log_level``/``log_format`` changes: a helper for the caller's ``apply``."""
    if "log_format" in applied:
        logs.setup(settings.log_level, settings.log_format)
    elif "log_level" in applied:
        logs.set_level(settings.log_level)


async def reload_loop(
    load: Callable[[], Settings],
    apply: Callable[[Settings, Changes], None],
    *,
    current: Settings,
    notifier: Notifier | None = None,
    on_signal: Callable[[], None] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """On each SIGHUP: ``load()`` again, then ``apply(settings, changes)`` what may change.

    ``current`` is the settings in effect at start. ``load`` re-reads them the way
    start-up did (it runs in a thread: it reads a file). ``apply`` gets the settings now
    in effect — ``current`` with only the reloadable changes — and those changes; it is
    called only when something reloadable changed, and should not block. With a
    ``notifier``, systemd sees ``RELOADING=1`` and then ``READY=1`` around each reload.
    ``on_signal`` runs first at each SIGHUP. Started once the SIGHUP handler is installed.
    """
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        task_status.started()
        async for _ in signals:
            if on_signal is not None:
                on_signal()  # e.g. pass the SIGHUP on to the agent child
            if notifier is not None:
                await notifier.reloading(status="reloading settings")
            current = await _reload_once(load, apply, current)
            if notifier is not None:
                await notifier.ready(status="serving")


async def _reload_once(
    load: Callable[[], Settings], apply: Callable[[Settings, Changes], None], current: Settings
) -> Settings:
    log.info("SIGHUP received: reloading settings")
    try:
        new = await trio.to_thread.run_sync(load)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            log.error("reload: configuration: %s", line)
        log.error("reload: keeping the current settings")
        return current
    applied, restart = plan_reload(current, new)
    merged = merge(current, applied)
    if applied:
        try:
            apply(merged, applied)
        except Exception:  # a failed apply must not stop the server
            log.exception("reload: applying %s failed; keeping the current settings", ", ".join(applied))
            return current
    log.info(describe(applied, restart))
    return merged


# --- provider environment --------------------------------------------------------------


def is_provider_var(name: str) -> bool:
    return name.startswith(PROVIDER_ENV_PREFIXES)


def provider_env_changes(old_env: Mapping[str, str], new_env: Mapping[str, str]) -> list[str]:
    """Names (never values) of provider variables added, removed or changed, sorted."""
    names = {k for k in (*old_env, *new_env) if is_provider_var(k)}
    return sorted(k for k in names if old_env.get(k) != new_env.get(k))


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's ``EnvironmentFile=`` reads them.

    Blank lines and lines starting with ``#`` or ``;`` are skipped; a value may be
    quoted with single or double quotes. Lines that are not assignments are skipped.
    """
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            key, sep, value = line.partition("=")
            key = key.strip().removeprefix("export ").strip()
            if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
                continue
            value = value.strip()
            if value[:1] in ("'", '"'):
                try:
                    parts = shlex.split(value)
                except ValueError:
                    continue
                value = parts[0] if parts else ""
            out[key] = value
    return out
