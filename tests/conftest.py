"""Fixtures shared by every test directory.

Docker and the local model are real here: a test that needs them fails (never skips)
when they are missing, so CI cannot go green without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing

from atomic import config


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Virtual time: sleeps end at once, trio.current_time() is exact."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def tmp_settings(tmp_path: Path) -> config.Settings:
    """Settings isolated in a temporary data dir and socket path, ignoring the caller's env."""
    return config.load(
        env={},
        overrides={
            "data_dir": str(tmp_path / "data"),
            "ipc_socket": str(tmp_path / "agent.sock"),
            "http_port": 0,
        },
    )


@pytest.fixture
def keep_logging():
    """For a test that runs a command's set-up (``logs.setup`` puts a handler on the
    stderr pytest captures, which is closed after the test): the root logger as it was."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def docker_client():
    """A live Docker client. Fails the test when the engine is not reachable."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - translated into a test failure
        pytest.fail(f"Docker engine is required for this test and is not reachable: {exc}")
    image = os.environ.get("ATOMIC_SANDBOX_IMAGE", "atomic-sandbox:latest")
    try:
        client.images.get(image)
    except Exception:  # noqa: BLE001
        pytest.fail(f"sandbox image {image} is missing: run tools/build-sandbox-image.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def language_images(docker_client) -> dict[str, str]:
    """Every language's sandbox image (name -> image), built when missing or outdated.

    Built as ``atomic sandbox build-image --all`` would: offline (Debian's packages only),
    the downloaded .debs kept on the host (``ATOMIC_IMAGE_CACHE_DIR``), so only the first
    run on a machine pays for it (about 6 minutes on 2 cores); later runs find them.
    """
    from atomic.languages import LANGUAGES
    from atomic.sandbox.image import ImageBuilder

    env = {k: v for k, v in os.environ.items() if k in ("ATOMIC_SANDBOX_IMAGE", "ATOMIC_IMAGE_CACHE_DIR")}
    settings = config.load(env=env)
    try:
        reports = list(ImageBuilder(settings).build(LANGUAGES))
    except Exception as exc:  # noqa: BLE001 - a failed build fails the tests that need it
        pytest.fail(f"building the language images failed: {exc}")
    return {r.language: r.image for r in reports}


class TLSFiles:
    """A test CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files
    (made with trustme, which builds them with the cryptography package)."""

    def __init__(self, directory: Path) -> None:
        import trustme

        self.authority = trustme.CA()
        leaf = self.authority.issue_cert("127.0.0.1", "localhost", "::1")
        self.ca = str(directory / "ca.pem")
        self.cert = str(directory / "cert.pem")
        self.key = str(directory / "key.pem")
        self.authority.cert_pem.write_to_path(self.ca)
        for blob in leaf.cert_chain_pems:
            blob.write_to_path(self.cert, append=True)
        leaf.private_key_pem.write_to_path(self.key)
        # A second certificate's key: a real PEM key that is not the first one's.
        self.other_key = str(directory / "other-key.pem")
        self.authority.issue_cert("127.0.0.1").private_key_pem.write_to_path(self.other_key)

    def client_context(self):
        import ssl

        return ssl.create_default_context(cafile=self.ca)


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    d = tmp_path / "tls"
    d.mkdir()
    return TLSFiles(d)
