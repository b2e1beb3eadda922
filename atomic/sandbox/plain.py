"""Plain runs: one program in one container, the way most jobs run.

* **direct** (cold): a container whose command is the program (:func:`run_direct`).
* **exec**: a started container (a warm one, or one made so its workspace can be
  collected) and the program by ``docker exec`` (:func:`run_exec`, :func:`collect`).

The program is ``sh -c 'cp inputs to /workspace && exec "$@" < /atomic/stdin'`` as uid
10001 (see :func:`.run.wrapper`); :func:`.run.supervise` watches it.
"""

from __future__ import annotations

import functools
import logging
import time

import trio

from ..errors import SandboxError
from . import paths
from .engine import Engine
from .limits import MIB, USER, WORKSPACE, Limits
from .pool import Sandbox
from .run import OnOutput, Ran, RunSpec, cgroup_counters, outcome, prepare_stream, shutdown, supervise, wrapper

log = logging.getLogger(__name__)


async def run_direct(
    engine: Engine, sb: Sandbox, spec: RunSpec, files: list[tuple[str, bytes]], limits: Limits,
    on_output: OnOutput | None,
) -> Ran:
    """A created container whose command is the program: attach, start, supervise."""
    await trio.to_thread.run_sync(paths.write_inputs, sb.run_dir, files, bytes(spec.stdin), limiter=engine.limiter)
    api = engine.api()
    params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}
    sock = prepare_stream(await engine.call(api.attach_socket, sb.container_id, params))

    async def exit_code() -> int | None:
        # Side-effect free, so abandoned if the deadline passes first.
        info = await engine.call(api.wait, sb.container_id, abandon=True)
        return info.get("StatusCode")

    t0 = time.perf_counter()
    try:
        await engine.call(api.start, sb.container_id)
        out, killed, counters, code = await supervise(
            sb, sock, limits, on_output, exit_code, engine.kill, settings=engine.settings(), readers=engine.readers
        )
    finally:
        shutdown(sock)
    duration = (time.perf_counter() - t0) * 1000
    oom = bool(counters and counters[0])
    if not oom and code is not None and code >= 128:
        state = await engine.call(api.inspect_container, sb.container_id, abandon=True)
        oom = bool(state["State"].get("OOMKilled"))
    # The cgroup is gone once the container exits: stderr is the fallback witness.
    return outcome(code, out, killed, oom, counters, duration, [], final_counters=False)

async def run_exec(
    engine: Engine, sb: Sandbox, argv: list[str], spec: RunSpec, files: list[tuple[str, bytes]], limits: Limits,
    on_output: OnOutput | None,
) -> Ran:
    """A started container (warm, or made to collect files): the program by ``docker exec``."""
    await trio.to_thread.run_sync(paths.write_inputs, sb.run_dir, files, bytes(spec.stdin), limiter=engine.limiter)
    api = engine.api()
    cmd = wrapper(argv, limits)
    create = functools.partial(api.exec_create, sb.container_id, cmd, user=USER, workdir=WORKSPACE)
    exec_id = (await engine.call(create))["Id"]

    async def exit_code() -> int | None:
        # The output can end before the process does (it may close its descriptors).
        while True:
            info = await engine.call(api.exec_inspect, exec_id, abandon=True)
            if not info.get("Running"):
                return info.get("ExitCode")
            await trio.sleep(0.02)

    t0 = time.perf_counter()
    sock = prepare_stream(await engine.call(lambda: api.exec_start(exec_id, socket=True)))
    try:
        out, killed, counters, code = await supervise(
            sb, sock, limits, on_output, exit_code, engine.kill, settings=engine.settings(), readers=engine.readers
        )
    finally:
        shutdown(sock)
    duration = (time.perf_counter() - t0) * 1000
    final = cgroup_counters(sb.container_id) if killed is None else None
    counters = final if final is not None else counters
    oom = bool(counters and counters[0])
    if not oom and killed is None and counters is None and code is not None and code >= 128:
        # No cgroup view: the engine records an OOM kill once the container stops.
        await engine.kill(sb)
        state = await engine.call(api.inspect_container, sb.container_id, abandon=True)
        oom = bool(state["State"].get("OOMKilled"))
    files_out: list[tuple[str, bytes]] = []
    if spec.collect and killed is None and not oom:
        files_out = await collect(engine, sb, dict(files))
    return outcome(code, out, killed, oom, counters, duration, files_out, final_counters=final is not None)

async def collect(engine: Engine, sb: Sandbox, inputs: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """What the program left in the workspace: regular files only, never followed links."""
    import io

    api = engine.api()
    cap = engine.settings().disk_mb * MIB
    tar = ["tar", "-C", WORKSPACE, "-cf", "-", "."]
    exec_id = (await engine.call(functools.partial(api.exec_create, sb.container_id, tar, user=USER)))["Id"]
    sock = prepare_stream(await engine.call(lambda: api.exec_start(exec_id, socket=True)))

    def read_all() -> bytes:
        from docker.utils.socket import frames_iter

        data = bytearray()
        for stream_id, chunk in frames_iter(sock, tty=False):
            if stream_id == 1 and len(data) <= cap + (1 << 20):
                data += chunk
        return bytes(data)

    try:
        blob = await trio.to_thread.run_sync(read_all, limiter=engine.readers, abandon_on_cancel=True)
    except OSError as exc:
        raise SandboxError(f"collecting the workspace failed: {exc}") from None
    finally:
        shutdown(sock)
    try:
        files_out, _ = paths.read_tar_files(io.BytesIO(blob), inputs, cap)
    except Exception as exc:  # noqa: BLE001 - a torn archive (workspace still changing)
        log.warning("workspace archive unreadable: %s", exc)
        return []
    return files_out
