"""The ``atomic`` command: serve, agent, generate, status, sandbox tools."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import __version__, config, errors, logs

# Flags shared by commands that read settings: name -> (flag, help). Values given on the
# command line override the file and the environment.
_SETTING_FLAGS = {
    "host": ("--host", "address to bind"),
    "http_port": ("--port", "HTTP port"),
    "ws_port": ("--ws-port", "separate WebSocket port"),
    "data_dir": ("--data-dir", "jobs database and artifacts"),
    "ipc_socket": ("--socket", "agent Unix socket"),
    "ipc_tcp": ("--agent-tcp", "host:port of a remote agent"),
    "log_level": ("--log-level", "DEBUG, INFO, WARNING, ERROR"),
    "provider": ("--provider", "default provider"),
    "model": ("--model", "default model"),
    "warm_pool_size": ("--warm-pool", "pre-started sandboxes"),
    "max_concurrent": ("--max-concurrent", "pipelines at once"),
}


DEFAULT_URL = "http://127.0.0.1:8080"


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """``--url``, ``--api-key`` and ``--ca`` with their environment defaults: every command
    that talks to a server takes them (``atomic.client.connection`` reads them)."""
    p.add_argument("--url", default=os.environ.get("ATOMIC_URL", DEFAULT_URL),
                   help="the server (ATOMIC_URL; https:// when it serves TLS)")
    p.add_argument("--api-key", default=os.environ.get("ATOMIC_API_KEY"), help="API key (ATOMIC_API_KEY)")
    p.add_argument("--ca", default=None, metavar="FILE",
                   help="PEM CA bundle the server's certificate must chain to (ATOMIC_CA_FILE; "
                        "default: the system's CAs)")


def _add_settings(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    p.add_argument("--config", help="TOML settings file")
    for name in names:
        flag, help_ = _SETTING_FLAGS[name]
        p.add_argument(flag, dest=name, default=None, help=help_)


def _settings(args: argparse.Namespace, **extra: Any) -> config.Settings:
    overrides = {name: getattr(args, name, None) for name in _SETTING_FLAGS}
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return config.load(config_file=getattr(args, "config", None), overrides=overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atomic", description="A prompt in, a tested, packaged program out.")
    parser.add_argument("--version", action="version", version=f"atomic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the server (and the agent as a supervised child)")
    _add_settings(p, tuple(_SETTING_FLAGS))
    p.add_argument("--agent", choices=("child", "external"), default=None,
                   help="child: start and supervise the agent; external: connect to one started by `atomic agent`")

    p = sub.add_parser("agent", help="run the LLM agent process on the Unix socket")
    _add_settings(p, ("ipc_socket", "ipc_tcp", "log_level", "provider", "model"))

    p = sub.add_parser("generate", help="submit a prompt to a running server and stream the job")
    p.add_argument("prompt")
    add_connection_args(p)
    p.add_argument("--language", default="python")
    p.add_argument("--priority", default="normal", choices=("low", "normal", "high"))
    p.add_argument("--provider")
    p.add_argument("--model")
    p.add_argument("--no-execute", action="store_true")
    p.add_argument("--export", default="zip", help="comma-separated: zip,tar,git")
    p.add_argument("--out", default=".", help="folder for the downloaded artifact")
    p.add_argument("--quiet", action="store_true", help="no token stream, just the result")
    p.add_argument("--tests", metavar="FILE",
                   help="JSON list of test cases ({name?, stdin?, args?, expected_stdout?, expected_exit_code?})")
    p.add_argument("--test-code", metavar="FILE", help="a test program in the job's language, run after it")
    p.add_argument("--samples", type=int, help="candidates generated and judged (1..8); the best is kept")
    p.add_argument("--repairs", type=int, help="repair rounds per candidate (capped by the server)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int, help="sampling seed; sample i uses seed + i")
    p.add_argument("--judge-all", action="store_true", help="judge every candidate to the end")

    p = sub.add_parser("eval", help="score a model on a task file (pass@k) through a running server")
    from .eval.command import add_arguments as add_eval_arguments

    add_connection_args(p)
    add_eval_arguments(p)
    p.add_argument("--config", help="TOML settings file (eval_concurrency, eval_job_timeout_s)")

    p = sub.add_parser("replay", help="submit the job an artifact's atomic.json records, again")
    p.add_argument("file", help="atomic.json, or a zip/tar artifact holding it")
    add_connection_args(p)
    p.add_argument("--out", default=".", help="folder for the downloaded artifact")
    p.add_argument("--quiet", action="store_true", help="no token stream, just the result")
    p.add_argument("--print", action="store_true", help="print the generate body instead of submitting it")

    p = sub.add_parser("status", help="print a running server's status")
    add_connection_args(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sandbox", help="sandbox image and container tools")
    ssub = p.add_subparsers(dest="sandbox_command", required=True)
    b = ssub.add_parser("build-image", help="build sandbox images (offline: Debian's packages only)",
                        description="Build the base image (python, shell) or the named languages' images, "
                                    "and print each image's build time and size.")
    b.add_argument("--language", action="append", default=[], metavar="NAME",
                   help="a language to build (repeatable); default: the base image (python, shell)")
    b.add_argument("--all", action="store_true", help="every language")
    b.add_argument("--package", action="append", default=[], metavar="[LANG=]DEB",
                   help="an extra Debian package (repeatable), for LANG or for every --language named")
    b.add_argument("--rebuild", action="store_true", help="build even when the image is there")
    b.add_argument("--method", choices=("debootstrap", "dockerfile"), default="debootstrap",
                   help="how the base image is made (dockerfile needs a registry)")
    b.add_argument("--config")
    r = ssub.add_parser("reap", help="remove leftover Atomic containers")
    r.add_argument("--config")

    p = sub.add_parser("model-path", help="print the local model file in use")
    p.add_argument("--config")

    p = sub.add_parser("config", help="print the settings in effect (secrets masked), or the reference")
    p.add_argument("--config")
    p.add_argument("--reference", action="store_true", help="every setting, its default and meaning")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except errors.ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"atomic: configuration: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "serve":
        settings = _settings(args, agent=args.agent)
        logs.setup(settings.log_level, settings.log_format)
        from functools import partial

        import trio

        from . import tracing
        from .server.serve import serve

        tracing.setup("atomic")  # only when OTEL_* ask; ConfigError for values it cannot follow
        try:
            trio.run(partial(serve, settings, reload=partial(_settings, args, agent=args.agent), freeze_gc=True))
        finally:
            tracing.shutdown()
        return 0
    if cmd == "agent":
        settings = _settings(args)
        logs.setup(settings.log_level, settings.log_format)
        from . import tracing
        from .agent.server import main as agent_main

        tracing.setup("atomic-agent")
        try:
            return agent_main(settings)
        finally:
            tracing.shutdown()
    if cmd == "generate":
        from .client import generate

        return generate(args)
    if cmd == "eval":
        from .eval.command import main as eval_main

        settings = config.load(config_file=args.config)
        if args.concurrency is None:
            args.concurrency = settings.eval_concurrency
        if args.job_timeout is None:
            args.job_timeout = settings.eval_job_timeout_s
        return eval_main(args)
    if cmd == "replay":
        from .client import replay

        return replay(args)
    if cmd == "status":
        from .client import status

        return status(args)
    if cmd == "sandbox":
        settings = _settings(args)
        logs.setup(settings.log_level, "text")
        if args.sandbox_command == "build-image":
            return _build_images(settings, args)
        from .sandbox.reaper import reap

        n = reap(settings)
        print(f"removed {n} container(s)")
        return 0
    if cmd == "model-path":
        settings = _settings(args)
        from .agent.providers.local import find_model_path

        try:
            print(find_model_path(settings))
        except errors.AtomicError as exc:
            print(f"atomic: {exc}", file=sys.stderr)
            return 1
        return 0
    if cmd == "config":
        if args.reference:
            for var, default, doc in config.reference():
                print(f"{var:32} {default!s:28} {doc}")
            return 0
        settings = _settings(args)
        for key, value in settings.public().items():
            print(f"{key} = {value!r}")
        return 0
    raise AssertionError(cmd)


def _build_images(settings: config.Settings, args: argparse.Namespace) -> int:
    from .languages import BASE_LANGUAGES, LANGUAGES
    from .sandbox.image import ImageBuilder

    names = list(LANGUAGES) if args.all else (args.language or list(BASE_LANGUAGES))
    extra: dict[str, list[str]] = {}
    for spec in args.package:
        lang, sep, deb = spec.rpartition("=")
        for name in [lang] if sep else names:
            extra.setdefault(name, []).append(deb)
    unknown = sorted(set(extra) - set(names))
    if unknown:
        print(f"atomic: --package names {unknown[0]!r}, which is not among the languages built", file=sys.stderr)
        return 2
    try:
        for report in ImageBuilder(settings, method=args.method, rebuild=args.rebuild).build(names, extra):
            print(report.line(), flush=True)
    except errors.AtomicError as exc:
        print(f"atomic: {exc}", file=sys.stderr)
        return 1
    return 0
