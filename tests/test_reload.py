"""SIGHUP reload: the plan (pure), and the loop driven by a real SIGHUP to this process."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from atomic import config
from atomic.config import Settings
from atomic.reload import (
    describe,
    plan_reload,
    provider_env_changes,
    read_env_file,
    reload_loop,
    reloadable,
)

BASE = config.load(env={}, overrides={"data_dir": "/var/lib/atomic"})


# --- plan_reload ------------------------------------------------------------------------


def test_reloadable_names_are_settings() -> None:
    assert reloadable() <= set(config.FIELDS)
    assert {"log_level", "api_keys", "max_timeout_s", "temperature"} <= reloadable()
    assert not {"http_port", "data_dir", "agent", "ipc_socket"} & reloadable()


def test_plan_nothing_changed() -> None:
    assert plan_reload(BASE, BASE.replace()) == ({}, [])


def test_plan_splits_applied_from_restart() -> None:
    new = BASE.replace(log_level="DEBUG", max_timeout_s=60.0, http_port=9090, data_dir="/srv/atomic")
    applied, restart = plan_reload(BASE, new)
    assert applied == {"log_level": ("INFO", "DEBUG"), "max_timeout_s": (120.0, 60.0)}
    assert restart == ["http_port", "data_dir"]  # declaration order


def test_plan_every_reloadable_setting_is_applied() -> None:
    changed = {
        name: (("x",) if isinstance(getattr(BASE, name), tuple) else getattr(BASE, name))
        for name in reloadable()
    }
    changed.update(log_level="ERROR", log_format="json", api_keys=("k",), cors_origins=("https://a",),
                   rate_limit="20/s", rate_burst=5.0)
    for name in ("default_memory_mb", "memory_limit_mb", "pids", "max_pids", "output_limit_bytes",
                 "repair_attempts", "max_tokens", "compile_memory_mb", "max_compile_memory_mb"):
        changed[name] = getattr(BASE, name) + 1
    for name in ("timeout_s", "max_timeout_s", "cpus", "max_cpus", "retention_days", "temperature",
                 "compile_timeout_s", "max_compile_timeout_s"):
        changed[name] = getattr(BASE, name) + 0.5
    applied, restart = plan_reload(BASE, BASE.replace(**changed))
    assert set(applied) == reloadable() and restart == []


def test_describe_masks_secrets() -> None:
    applied, restart = plan_reload(BASE, BASE.replace(api_keys=("s3cret-1", "s3cret-2"), http_port=1))
    line = describe(applied, restart)
    assert "s3cret" not in line
    assert line == "settings reloaded: applied api_keys <0 secrets> -> <2 secrets>; ignored (need a restart): http_port"


# --- provider environment -------------------------------------------------------------


def test_provider_env_changes_names_only() -> None:
    old = {"OPENAI_API_KEY": "sk-old", "ANTHROPIC_API_KEY": "a", "PATH": "/bin", "AWS_REGION": "eu-west-1"}
    new = {"OPENAI_API_KEY": "sk-new", "ANTHROPIC_API_KEY": "a", "PATH": "/usr/bin", "OLLAMA_HOST": "h"}
    assert provider_env_changes(old, new) == ["AWS_REGION", "OLLAMA_HOST", "OPENAI_API_KEY"]
    assert provider_env_changes(old, dict(old)) == []


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / "atomic.env"
    path.write_text(
        "# provider keys\n"
        "; also a comment\n"
        "\n"
        "OPENAI_API_KEY=sk-abc\n"
        'ANTHROPIC_API_KEY="with spaces and # hash"\n'
        "export ATOMIC_LOG_LEVEL = DEBUG\n"
        "not an assignment\n"
        "EMPTY=\n"
    )
    assert read_env_file(path) == {
        "OPENAI_API_KEY": "sk-abc",
        "ANTHROPIC_API_KEY": "with spaces and # hash",
        "ATOMIC_LOG_LEVEL": "DEBUG",
        "EMPTY": "",
    }


# --- reload_loop, with a real SIGHUP ---------------------------------------------------


class Harness:
    """reload_loop reading a real TOML file through config.load, as `atomic serve` does."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "atomic.toml"
        self.path.write_text('max_timeout_s = 120\napi_keys = ["first-secret"]\n')
        self.start = self.load()
        self.calls: list[tuple[Settings, dict[str, tuple[Any, Any]]]] = []
        self.applied = trio.Event()

    def load(self) -> Settings:
        return config.load(env={}, config_file=self.path, overrides={"data_dir": "/var/lib/atomic"})

    def apply(self, settings: Settings, changes: dict[str, tuple[Any, Any]]) -> None:
        self.calls.append((settings, changes))
        self.applied.set()

    async def hup_and_wait_applied(self) -> None:
        self.applied = trio.Event()
        os.kill(os.getpid(), signal.SIGHUP)
        with trio.fail_after(5):
            await self.applied.wait()


async def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    with trio.fail_after(5):
        while True:
            for rec in caplog.records:
                if text in rec.getMessage():
                    return rec
            await trio.sleep(0.01)


async def test_sighup_applies_reloadable_changes_and_names_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atomic.reload")
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: reload_loop(h.load, h.apply, current=h.start, task_status=task_status))
        h.path.write_text(
            'max_timeout_s = 60\napi_keys = ["second-secret", "third-secret"]\n'
            'http_port = 9999\nlog_level = "DEBUG"\n'
        )
        await h.hup_and_wait_applied()
        rec = await _wait_for_log(caplog, "settings reloaded")
        nursery.cancel_scope.cancel()

    [(settings, changes)] = h.calls
    assert changes == {
        "api_keys": (("first-secret",), ("second-secret", "third-secret")),
        "log_level": ("INFO", "DEBUG"),
        "max_timeout_s": (120.0, 60.0),
    }
    # The settings in effect: reloadable changes only; the port stays until a restart.
    assert settings == h.start.replace(
        api_keys=("second-secret", "third-secret"), log_level="DEBUG", max_timeout_s=60.0
    )
    assert settings.http_port == 8080
    msg = rec.getMessage()
    assert "applied api_keys <1 secret> -> <2 secrets>, log_level INFO -> DEBUG, max_timeout_s 120.0 -> 60.0" in msg
    assert "ignored (need a restart): http_port" in msg
    assert "secret" not in msg.replace("<1 secret>", "").replace("<2 secrets>", "")
    assert not any("-secret" in r.getMessage() for r in caplog.records)


async def test_bad_config_keeps_the_old_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="atomic.reload")
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: reload_loop(h.load, h.apply, current=h.start, task_status=task_status))

        h.path.write_text('max_timeout_s = -1\ncpus = "many"\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await _wait_for_log(caplog, "keeping the current settings")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert f"reload: configuration: max_timeout_s (in {h.path})=-1: expected a number above 0" in errors
        assert any(e.startswith("reload: configuration: cpus (in ") for e in errors)
        assert h.calls == []

        # The next good reload is measured against the settings kept, not the bad file.
        h.path.write_text('max_timeout_s = 90\napi_keys = ["first-secret"]\n')
        await h.hup_and_wait_applied()
        nursery.cancel_scope.cancel()

    [(settings, changes)] = h.calls
    assert changes == {"max_timeout_s": (120.0, 90.0)}
    assert settings == h.start.replace(max_timeout_s=90.0)


async def test_sighup_with_nothing_reloadable_changed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="atomic.reload")
    h = Harness(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: reload_loop(h.load, h.apply, current=h.start, task_status=task_status))
        h.path.write_text('max_timeout_s = 120\napi_keys = ["first-secret"]\nthreads = 8\n')
        os.kill(os.getpid(), signal.SIGHUP)
        rec = await _wait_for_log(caplog, "settings reloaded")
        nursery.cancel_scope.cancel()
    assert h.calls == []  # nothing to apply
    assert rec.getMessage() == "settings reloaded: applied nothing; ignored (need a restart): threads"


async def test_systemd_sees_reloading_then_ready(tmp_path: Path) -> None:
    from atomic.notify import Notifier

    h = Harness(tmp_path)
    sock_path = str(tmp_path / "notify.sock")
    with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as systemd:
        await systemd.bind(sock_path)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": sock_path})
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: reload_loop(
                    h.load, h.apply, current=h.start, notifier=notifier, task_status=task_status
                )
            )
            h.path.write_text('max_timeout_s = 100\napi_keys = ["first-secret"]\n')
            os.kill(os.getpid(), signal.SIGHUP)
            with trio.fail_after(5):
                first = (await systemd.recv(4096)).decode().split("\n")
                second = (await systemd.recv(4096)).decode().split("\n")
            nursery.cancel_scope.cancel()
    assert first[0] == "RELOADING=1" and first[1].startswith("MONOTONIC_USEC=")
    assert second == ["READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]
    assert [c for _, c in h.calls] == [{"max_timeout_s": (120.0, 100.0)}]
