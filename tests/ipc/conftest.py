"""IPC fixtures: settings whose socket path is short enough for AF_UNIX (108 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest

from atomic import config


@pytest.fixture
def ipc_settings(tmp_settings: config.Settings) -> Iterator[config.Settings]:
    short = tempfile.mkdtemp(prefix="atomic-")
    yield tmp_settings.replace(ipc_socket=f"{short}/agent.sock", provider="replay", cleanup_timeout_s=5.0)
    shutil.rmtree(short, ignore_errors=True)
