"""Fixtures for atomic eval: a contract-speaking server, and tests/server's real one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from contract_server import ContractServer

# tests/server's make_server (a real Atomic server, replay provider, real sandbox), shared
# under a name of its own so the two conftest modules never shadow each other.
_spec = importlib.util.spec_from_file_location(
    "atomic_tests_server_conftest", Path(__file__).resolve().parents[1] / "server" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_server = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _server  # dataclasses look their module up there
_spec.loader.exec_module(_server)
make_server = _server.make_server
short_dir = _server.short_dir


@pytest.fixture
async def contract(nursery) -> ContractServer:
    server = ContractServer()
    await nursery.start(server.serve)
    return server
