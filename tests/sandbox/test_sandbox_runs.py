"""The sandbox on the real engine: every hostile program is contained and reported.

Each test is bounded with ``trio.fail_after``; the session-end check in conftest.py
asserts no container with our label is left.
"""

from __future__ import annotations

import os

import pytest
import trio

from atomic import errors
from atomic.sandbox import ExecutionResult, RunSpec, SandboxController

pytestmark = pytest.mark.docker

PY = ["python3", "main.py"]


async def run(ctl: SandboxController, source: str, *, stdin: bytes = b"", limits=None, collect=False,
              files=(), on_output=None, job_id=None) -> ExecutionResult:
    spec = RunSpec(
        files=[("main.py", source.encode()), *files],
        command=PY,
        stdin=stdin,
        limits=ctl.resolve_limits(limits) if limits is not None else None,
        collect=collect,
        job_id=job_id,
    )
    with trio.fail_after(30):
        return await ctl.execute(spec, on_output)


def labelled(docker_client, **labels) -> list:
    filters = ["io.atomic.managed=1"] + [f"io.atomic.{k}={v}" for k, v in labels.items()]
    return docker_client.containers.list(all=True, sparse=True, filters={"label": filters})


async def until_gone(docker_client, **labels) -> None:
    with trio.fail_after(15):
        while labelled(docker_client, **labels):
            await trio.sleep(0.1)


# --- ordinary runs -------------------------------------------------------------------


async def test_normal_run_with_stdin(controller):
    res = await run(controller, "import sys\ndata = sys.stdin.read()\nprint('got', data.upper())", stdin=b"hello")
    assert res.termination == "exited" and res.exit_code == 0
    assert res.stdout == "got HELLO\n" and res.stderr == "" and not res.truncated
    assert (res.verdict, res.compile, res.tests, res.passed, res.total) == ("accepted", None, None, None, None)


async def test_exit_code_propagation(any_controller):
    res = await run(any_controller, "import sys\nprint('bye', file=sys.stderr)\nsys.exit(42)")
    assert (res.exit_code, res.termination, res.stderr) == (42, "exited", "bye\n")


async def test_files_in_nested_and_command_not_found(controller):
    res = await run(controller, "print(open('pkg/data.txt').read())", files=[("pkg/data.txt", b"nested")])
    assert res.stdout == "nested\n"
    spec = RunSpec(files=[], command=["no-such-program"])
    with trio.fail_after(30):
        res = await controller.execute(spec)
    assert res.termination == "exited" and res.exit_code == 127


async def test_live_output_arrives_before_the_end(any_controller):
    events: list[tuple[float, str, str]] = []
    src = "import time, sys\nprint('first', flush=True)\nprint('é' * 3, file=sys.stderr, flush=True)\ntime.sleep(1)\nprint('second')"
    res = await run(any_controller, src, on_output=lambda s, t, c: events.append((trio.current_time(), s, t)))
    end = trio.current_time()
    assert res.termination == "exited"
    # The first line came while the program was still running (it sleeps 1 s after it).
    early = "".join(t for at, s, t in events if s == "stdout" and end - at > 0.7)
    assert early == "first\n"
    assert "".join(t for _, s, t in events if s == "stdout") == "first\nsecond\n"
    assert "".join(t for _, s, t in events if s == "stderr") == "ééé\n"


# --- hostile programs ----------------------------------------------------------------


async def test_infinite_loop_times_out(any_controller):
    res = await run(any_controller, "while True:\n    pass", limits={"timeout_s": 1.5})
    assert res.termination == "timeout" and res.exit_code is None
    assert 1400 <= res.duration_ms < 6000


async def test_sleep_past_timeout_keeps_earlier_output(controller):
    res = await run(controller, "import time\nprint('before', flush=True)\ntime.sleep(60)", limits={"timeout_s": 1})
    assert res.termination == "timeout"
    assert res.stdout == "before\n"


async def test_sigterm_is_ignored_but_still_killed(controller):
    src = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('armoured', flush=True)\ntime.sleep(60)"
    with trio.fail_after(10):
        res = await run(controller, src, limits={"timeout_s": 1})
    assert res.termination == "timeout" and res.stdout == "armoured\n"


async def test_fork_bomb_hits_pids(any_controller):
    src = "import os\nwhile True:\n    os.fork()"
    res = await run(any_controller, src)
    assert res.termination == "pids", res


async def test_shell_fork_bomb_hits_pids(controller):
    spec = RunSpec(files=[], command=["sh", "-c", "b() { b | b & }; b; sleep 5"], limits=controller.resolve_limits({"pids": 32}))
    with trio.fail_after(30):
        res = await controller.execute(spec)
    assert res.termination == "pids", res


async def test_memory_bomb_is_oom(any_controller):
    src = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))"
    res = await run(any_controller, src)
    assert res.termination == "oom", res
    assert res.exit_code == 137


async def test_network_is_unreachable(controller):
    src = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)"
    res = await run(controller, src)
    assert res.termination == "exited" and res.exit_code != 0
    assert "OSError" in res.stderr or "unreachable" in res.stderr.lower()


async def test_root_filesystem_is_read_only(controller):
    src = (
        "import os\n"
        "print([l.split()[3].split(',')[0] for l in open('/proc/mounts') if l.split()[1] == '/'][0])\n"
        "open('/workspace/ok', 'w').write('fine')\n"
        "open('/tmp/ok', 'w').write('fine')\n"
        "open('/x', 'w')\n"
    )
    res = await run(controller, src)
    assert res.stdout == "ro\n"
    assert res.exit_code == 1 and ("Read-only file system" in res.stderr or "Permission denied" in res.stderr)


async def test_huge_file_is_contained_by_the_disk_limit(controller, sandbox_settings):
    src = (
        "import os\n"
        "chunk = b'0' * (1 << 20)\n"
        "with open('big', 'wb') as fh:\n"
        "    for i in range(200):\n"
        "        fh.write(chunk)\n"
    )
    res = await run(controller, src, limits={"memory_mb": 256})
    assert res.termination == "exited" and res.exit_code == 1
    assert "No space left on device" in res.stderr
    # And nothing grew on the host: the input directory holds only the inputs.
    work = os.path.join(sandbox_settings.data_dir, "sandbox-work")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(work) for f in fs)
    assert total < 1 << 20


async def test_huge_stdout_hits_the_output_limit(any_controller, sandbox_settings):
    limit = sandbox_settings.output_limit_bytes
    src = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\nprint('never', file=sys.stderr)"
    res = await run(any_controller, src, limits={"timeout_s": 10})
    assert res.termination == "output_limit" and res.truncated
    assert res.stdout == "x" * limit and res.exit_code is None
    assert res.duration_ms < 8000  # killed once past the cap, not left to finish


async def test_path_traversal_is_refused_before_any_container(controller, docker_client):
    before = controller.statistics()
    for bad in ("../evil.py", "/etc/passwd", "a/../../x"):
        spec = RunSpec(files=[(bad, b"x")], command=PY)
        with pytest.raises(errors.ValidationError) as info:
            await controller.execute(spec)
        assert info.value.field == "files[].path"
    after = controller.statistics()
    assert after.runs_total == before.runs_total and not labelled(docker_client, owner=controller.owner)


async def test_symlink_out_of_the_workspace_is_not_followed(any_controller):
    src = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd_link')\n"
        "os.symlink('/etc', 'etc_link')\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/result.txt', 'w').write('42')\n"
        "open('given.txt', 'w').write('changed')\n"
        "print(os.path.islink('input_link'))\n"
    )
    spec = RunSpec(files=[("main.py", src.encode()), ("given.txt", b"original"), ("input_link", b"not a link"),
                          ("same.txt", b"same")], command=PY, collect=True)
    with trio.fail_after(30):
        ran = await any_controller.execute_collecting(spec)
    assert ran.result.termination == "exited" and ran.result.stdout == "False\n"
    assert dict(ran.files_out) == {"given.txt": b"changed", "out/result.txt": b"42"}


async def test_cancelled_run_is_killed_and_removed(controller, docker_client):
    started = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def victim() -> None:
                await run(controller, "import time\nprint('up', flush=True)\ntime.sleep(60)",
                          limits={"timeout_s": 60}, job_id="cancel-me", on_output=lambda s, t, c: started.set())

            nursery.start_soon(victim)
            await started.wait()
            assert labelled(docker_client, job="cancel-me")
            t0 = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - t0 < 5
    assert not labelled(docker_client, job="cancel-me")
    assert controller.statistics().runs_by_termination["cancelled"] == 1


# --- pool, reaping, availability ---------------------------------------------------


async def test_warm_pool_hit_and_refill(warm_controller, docker_client):
    ctl = warm_controller
    assert ctl.status()["warm"] == 1
    res = await run(ctl, "print(sum(range(10)))")
    assert res.stdout == "45\n"
    stats = ctl.statistics()
    assert stats.warm_hits == 1 and stats.warm_misses == 0
    with trio.fail_after(15):
        while ctl.status()["warm"] < 1:
            await trio.sleep(0.05)
    assert ctl.statistics().pool.created == 2
    # Other limits than the pool's take the cold path.
    res = await run(ctl, "print('cold')", limits={"memory_mb": 100, "timeout_s": 5})
    assert res.stdout == "cold\n" and ctl.statistics().warm_bypassed == 1


async def test_reaper_removes_orphans(controller, docker_client, sandbox_settings):
    from atomic.sandbox import reap

    dead = docker_client.containers.create(
        sandbox_settings.sandbox_image, ["true"],
        labels={"io.atomic.managed": "1", "io.atomic.pid": "999999", "io.atomic.host": os.uname().nodename},
    )
    ours = docker_client.containers.create(
        sandbox_settings.sandbox_image, ["true"],
        labels={"io.atomic.managed": "1", "io.atomic.pid": str(os.getpid()), "io.atomic.host": os.uname().nodename,
                "io.atomic.owner": controller.owner},
    )
    assert await trio.to_thread.run_sync(reap, sandbox_settings) == 1  # the CLI spares live owners
    assert await controller.reap() == 1  # the controller knows `ours` is not in use
    assert not labelled(docker_client, pid="999999") and not labelled(docker_client, owner=controller.owner)
    import docker.errors

    for c in (dead, ours):
        with pytest.raises(docker.errors.NotFound):
            c.reload()


async def test_docker_unavailable(sandbox_settings):
    ctl = SandboxController(sandbox_settings, docker_url="unix:///nonexistent/docker.sock")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(ctl.run)
            while ctl.status()["reason"] == "not checked yet":
                await trio.sleep(0.01)
            status = ctl.status()
            assert status["available"] is False and "not reachable" in status["reason"]
            with pytest.raises(errors.SandboxUnavailable) as info:
                await ctl.execute(RunSpec(files=[], command=["true"]))
            assert "not reachable" in info.value.message
            nursery.cancel_scope.cancel()


async def test_missing_image_is_unavailable(docker_client, sandbox_settings):
    ctl = SandboxController(sandbox_settings.replace(sandbox_image="atomic-no-such-image:none"))
    with trio.fail_after(10):
        with pytest.raises(errors.SandboxUnavailable) as info:
            await ctl.execute(RunSpec(files=[], command=["true"]))
    assert "missing" in info.value.message and ctl.status()["available"] is False
