"""Docker going away and coming back, seen through a real proxy of the engine's socket."""

from __future__ import annotations

import os
import shutil
import tempfile

import trio

from atomic.errors import SandboxUnavailable
from atomic.sandbox import RunSpec, SandboxController

DOCKER_SOCK = "/var/run/docker.sock"


class EngineProxy:
    """Forwards a Unix socket to the Docker engine's; ``down()`` drops it all."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.scope: trio.CancelScope | None = None

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as self.scope:
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(self.path)
            sock.listen(64)
            listener = trio.SocketListener(sock)
            try:
                async with trio.open_nursery() as nursery:
                    task_status.started()
                    await trio.serve_listeners(self._pipe, [listener], handler_nursery=nursery)
            finally:
                if os.path.exists(self.path):
                    os.unlink(self.path)

    def down(self) -> None:
        assert self.scope is not None
        self.scope.cancel()

    async def _pipe(self, client: trio.SocketStream) -> None:
        upstream = await trio.open_unix_socket(DOCKER_SOCK)

        async def copy(src, dst) -> None:
            try:
                while data := await src.receive_some(65536):
                    await dst.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await dst.aclose()

        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(copy, client, upstream)
            nursery.start_soon(copy, upstream, client)


async def test_docker_outage_degrades_and_recovers(docker_client, sandbox_settings):
    d = tempfile.mkdtemp(prefix="atomic-px")
    path = f"{d}/docker.sock"
    try:
        async with trio.open_nursery() as proxies:
            proxy = EngineProxy(path)
            await proxies.start(proxy.serve)
            # The controller stops (and cleans up) before the last proxy does.
            async with trio.open_nursery() as nursery:
                ctl = SandboxController(sandbox_settings, docker_url=f"unix://{path}")
                await nursery.start(ctl.run)
                spec = RunSpec(files=[("main.py", b"print('up')")], command=["python3", "main.py"])
                with trio.fail_after(30):
                    assert (await ctl.execute(spec)).stdout == "up\n"
                    proxy.down()
                    await trio.sleep(0.1)
                    try:
                        await ctl.execute(spec)
                    except SandboxUnavailable as exc:
                        assert exc.code == "sandbox_unavailable" and exc.message
                    else:
                        raise AssertionError("a run succeeded with the engine unreachable")
                    st = ctl.status()
                    assert st["available"] is False and st["reason"]
                    # The engine returns: the controller notices by itself, and sweeps
                    # what the outage kept it from removing.
                    proxy = EngineProxy(path)
                    await proxies.start(proxy.serve)
                    while not ctl.status()["available"]:
                        await trio.sleep(0.1)
                    assert (await ctl.execute(spec)).stdout == "up\n"
                nursery.cancel_scope.cancel()
            proxies.cancel_scope.cancel()
    finally:
        shutil.rmtree(d, ignore_errors=True)
