"""The Docker boundary: opening a client and translating the engine's exceptions.

Two places meet the Docker SDK: the controller (every call a server makes) and the
reaper (the CLI's ``atomic sandbox reap``). They share this client recipe and this one
translation of Docker's exceptions into :class:`~atomic.errors.SandboxError` /
:class:`~atomic.errors.SandboxUnavailable`, applied at the boundary where each meets them.
The SDK is imported only when first needed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ..config import Settings
from ..errors import SandboxError, SandboxUnavailable

if TYPE_CHECKING:
    from .pool import Sandbox


@dataclass(frozen=True)
class Engine:
    """What running a program needs of the controller: its Docker calls (in worker threads,
    exceptions translated), its kill, its current settings and its thread limiters."""

    call: Callable[..., Awaitable[Any]]
    api: Callable[[], Any]
    kill: Callable[[Sandbox], Awaitable[None]]
    settings: Callable[[], Settings]
    limiter: trio.CapacityLimiter
    readers: trio.CapacityLimiter


def open_client(docker_url: str | None, timeout: float = 300.0) -> Any:
    """A ``docker.DockerClient`` (blocking: call it in a thread). Raises SandboxUnavailable."""
    import docker

    try:
        if docker_url:
            client = docker.DockerClient(base_url=docker_url, timeout=int(timeout), max_pool_size=64)
        else:
            client = docker.from_env(timeout=int(timeout), max_pool_size=64)
        _tune(client.api)
        client.api.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine
        raise translate(exc) from None


def _tune(api: Any) -> None:
    """Two costs of the SDK's HTTP client that a busy server pays on every call.

    - docker-py keys its Unix-socket connection pools by the whole request URL, so every
      call naming a new container (create, attach, start, wait, remove ...) opened its own
      connection to the engine and closed another pool's: a connect, a pool and a close
      per call. One pool, keyed by the socket, keeps connections alive across calls.
    - ``requests`` reads the environment's proxy and netrc settings on every request;
      none of them applies to a Unix socket.
    """
    from docker.transport import UnixHTTPAdapter

    class OnePoolUnixAdapter(UnixHTTPAdapter):
        def get_connection(self, url: str, proxies: Any = None) -> Any:
            return super().get_connection("http+docker://localhost", proxies)

    api.trust_env = False
    adapter: Any = getattr(api, "_custom_adapter", None)
    if type(adapter) is UnixHTTPAdapter:  # a Unix socket (not TCP, SSH or a named pipe)
        shared = OnePoolUnixAdapter(
            "http+unix://" + adapter.socket_path, adapter.timeout, max_pool_size=adapter.max_pool_size
        )
        api._custom_adapter = shared
        api.mount("http+docker://", shared)
        adapter.close()


def translate(exc: BaseException, image: str | None = None) -> SandboxError:
    """Docker's exceptions (and the transport's) as ours."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, docker.errors.ImageNotFound) or (
        isinstance(exc, docker.errors.NotFound) and image and image in str(exc)
    ):
        return SandboxUnavailable(f"sandbox image {image} is missing; run `atomic sandbox build-image`")
    if isinstance(exc, docker.errors.APIError):
        return SandboxError(f"Docker engine error: {exc.explanation or exc}")
    if isinstance(
        exc, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError, docker.errors.DockerException)
    ):
        return SandboxUnavailable(f"Docker engine not reachable: {exc}")
    if isinstance(exc, (requests.exceptions.RequestException, OSError)):
        return SandboxError(f"Docker engine request failed: {exc}")
    return SandboxError(f"Docker SDK failure: {exc!r}")
