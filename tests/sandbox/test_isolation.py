"""The runner sandbox, attacked: what runs of a batch (and cases of a run) share, and what
they cannot do to each other.

With one lane every run of a batch shares one container, one after another. A run must
not see, signal or write another run's processes or files, nor read its output, and no
program may hold a capability. Each attack is followed by an honest run that checks it
found nothing of the attacker.
"""

from __future__ import annotations

import ast

import pytest
import trio

from atomic.sandbox import Case, ExecutionResult, RunSpec, SandboxController


pytestmark = [pytest.mark.docker, pytest.mark.slow]

CAPS = """\
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
caps = {k: int(status[k].strip(), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")}
try:
    os.setuid(0)
    became_root = True
except PermissionError:
    became_root = False
print(caps, status["NoNewPrivs"].strip(), became_root, os.getuid() != 0)
"""
NO_CAPS = "{'CapInh': 0, 'CapPrm': 0, 'CapEff': 0, 'CapAmb': 0} 1 False True\n"

# What a later run looks for: leftovers of an earlier one, and other processes.
SNOOP = """\
import glob, os
found = []
for path in ["/tmp/planted", "/workspace/planted", "/dev/shm/planted", "/tmp/secret.txt", "/tmp/fifo"]:
    if os.path.lexists(path):
        found.append(path)
for top in ("/workspace", "/tmp"):
    try:
        found += [f"{top}/{n}" for n in os.listdir(top)]
    except PermissionError:
        pass
found += glob.glob("/workspace/*/secret.txt") + glob.glob("/tmp/*/secret.txt")
me = os.getuid()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        uid = int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
    except (OSError, IndexError):
        continue
    if uid not in (0, me):
        found.append(f"process {pid} of uid {uid}")
    for link in ("cwd", "root"):
        try:
            for name in os.listdir(f"/proc/{pid}/{link}"):
                if name == "secret.txt":
                    found.append(f"/proc/{pid}/{link}/secret.txt")
        except OSError:
            pass
print("found:", sorted(found), "mine:", sorted(os.listdir(".")), "host:", open("/etc/hostname").read().strip())
"""


def py(source: str, **kw) -> RunSpec:
    return RunSpec(files=[("main.py", source.encode())], **kw)


def sh(source: str, **kw) -> RunSpec:
    return RunSpec(files=[("main.sh", source.encode())], language="shell", **kw)


@pytest.fixture
async def one_lane(controller_with):
    async with controller_with(batch_lanes=1, timeout_s=5.0) as ctl:
        yield ctl


async def batch(ctl: SandboxController, specs: list[RunSpec]) -> list[ExecutionResult]:
    with trio.fail_after(120):
        results = await ctl.execute_batch(specs)
    for r in results:
        assert isinstance(r, ExecutionResult), r
    return results  # type: ignore[return-value]


def snooped(res: ExecutionResult) -> tuple[list[str], list[str], str]:
    assert res.verdict == "accepted", res
    parts = res.stdout.split("found: ")[1]
    found, rest = parts.split(" mine: ")
    mine, host = rest.split(" host: ")
    return ast.literal_eval(found), ast.literal_eval(mine), host.strip()


async def test_kill_minus_one_reaches_only_the_runs_own_processes(one_lane: SandboxController) -> None:
    results = await batch(one_lane, [
        sh("kill -9 -1; sleep 0.2; echo survived"),
        py("print('next run fine')"),
        # A killer in the background: it kills its own run (the shell waiting on it), and
        # dies with that run; the next run is untouched.
        sh("(while :; do kill -9 -1 2>/dev/null; done) & sleep 0.5; echo never"),
        py(SNOOP),
        py("import os, signal\nos.kill(1, signal.SIGKILL)\nprint('init untouched')"),
        py("print('still serving')"),
    ])
    assert [r.verdict for r in results[:3]] == ["accepted", "accepted", "runtime_error"], results
    assert results[0].stdout == "survived\n" and results[2].exit_code == 137 and results[2].stdout == ""
    found, _, _ = snooped(results[3])
    assert found == []
    # Signalling init (or the runner) is refused: a PermissionError, the run fails alone.
    assert results[4].verdict == "runtime_error" and "PermissionError" in results[4].stderr
    assert results[5].stdout == "still serving\n"
    # All of it happened in one container: the runner was never hit.
    hosts = await batch(one_lane, [py("print(open('/etc/hostname').read().strip())")] * 2)
    assert hosts[0].stdout == hosts[1].stdout


async def test_a_run_cannot_write_into_another_runs_files(one_lane: SandboxController) -> None:
    attacker = py("""\
import os, subprocess
for path in ("/tmp/planted", "/workspace/planted", "/dev/shm/planted"):
    with open(path, "w") as fh:
        fh.write("planted")
    os.chmod(path, 0o666)
os.mkfifo("/tmp/fifo", 0o666)
# Stays behind, trying to write into whatever appears in the shared directories.
subprocess.Popen(["sh", "-c", "while :; do for d in /workspace/* /tmp/*; do echo pwned > $d/pwned; done 2>/dev/null; done"])
print("planted")
""")
    results = await batch(one_lane, [attacker, py(SNOOP), py(SNOOP)])
    assert results[0].stdout == "planted\n"
    for res in results[1:]:
        found, mine, _ = snooped(res)
        assert found == [] and mine == ["main.py"], res.stdout


async def test_a_run_cannot_read_another_runs_output(one_lane: SandboxController) -> None:
    writer = py("""\
import os, subprocess
open("secret.txt", "w").write("s3cr3t")
open("/tmp/secret.txt", "w").write("s3cr3t")
os.chmod("/tmp/secret.txt", 0o644)
os.chmod(".", 0o755)
subprocess.Popen(["sleep", "30"])  # a process holding its directory
print("s3cr3t")
""")
    results = await batch(one_lane, [writer, py(SNOOP)])
    assert results[0].stdout == "s3cr3t\n"
    found, mine, _ = snooped(results[1])
    assert found == [] and mine == ["main.py"]
    assert "s3cr3t" not in results[1].stdout + results[1].stderr


async def test_runs_at_the_same_time_are_in_different_sandboxes(controller_with) -> None:
    holder = py("import os, time\nopen('secret.txt', 'w').write('s3cr3t')\ntime.sleep(2)\n"
                "print(open('/etc/hostname').read().strip())")
    late = py("import time\ntime.sleep(0.8)\n" + SNOOP)
    async with controller_with(batch_lanes=2, timeout_s=10.0) as ctl:
        results = await batch(ctl, [holder, late])
    found, mine, host = snooped(results[1])
    assert found == [] and mine == ["main.py"]
    assert results[0].stdout.strip() != host  # the two ran at once, in two containers


async def test_cases_of_one_run_are_kept_apart(one_lane: SandboxController) -> None:
    src = """\
import os, sys
step = sys.stdin.read().strip()
if step == "write":
    open("/tmp/x", "w").write("x")
    open("x", "w").write("x")
print(step, os.getuid(), os.path.exists("/tmp/x"), os.path.exists("x"), sorted(os.listdir(".")))
"""
    tests = (Case(stdin=b"write"), Case(stdin=b"look"), Case(stdin=b"look"))
    with trio.fail_after(60):
        res = await one_lane.execute(py(src, tests=tests))
    lines = [t.stdout.split() for t in res.tests or ()]
    assert [(ln[0], ln[2], ln[3]) for ln in lines] == [("write", "True", "True"), ("look", "False", "False"),
                                                       ("look", "False", "False")]
    assert len({ln[1] for ln in lines}) == 3  # a fresh uid each


async def test_no_program_holds_a_capability(language_images, controller_with) -> None:
    async with controller_with(batch_lanes=1) as ctl:
        with trio.fail_after(60):
            plain = await ctl.execute(py(CAPS))
            case = await ctl.execute(py(CAPS, tests=(Case(),)))
            compiled = await ctl.execute(RunSpec(
                files=[("main.c", b'#include <stdlib.h>\nint main(void){return system("python3 /dev/stdin");}\n')],
                language="c", stdin=CAPS.encode()))
        (in_batch,) = await batch(ctl, [py(CAPS)])
    for res in (plain, case, in_batch, compiled):
        assert res.stdout == NO_CAPS, res


async def test_fork_bomb_and_memory_hog_in_a_batch_are_contained(one_lane: SandboxController) -> None:
    limits = one_lane.resolve_limits({"pids": 32, "memory_mb": 64, "timeout_s": 5})
    results = await batch(one_lane, [
        sh("b() { b | b & }; b; sleep 5", limits=limits),
        py("x = []\nwhile True:\n    x.append(bytearray(1 << 20))", limits=limits),
        py("import sys\nsys.stdout.write('y' * (1 << 24))", limits=limits),
        py("print('fine')", limits=limits),
    ])
    assert [r.termination for r in results] == ["pids", "oom", "output_limit", "exited"], results
    assert results[2].truncated and results[3].stdout == "fine\n"


async def test_a_kept_runner_sandbox_serves_later_requests_with_nothing_left(controller_with) -> None:
    async with controller_with(batch_lanes=1, runner_idle_s=30.0) as ctl:
        attack = py("""\
import os, subprocess
open("/tmp/planted", "w").write("x")
os.chmod("/tmp/planted", 0o666)
open("secret.txt", "w").write("s3cr3t")
subprocess.Popen(["sleep", "30"])
print(open("/etc/hostname").read().strip())
""", tests=(Case(),))
        with trio.fail_after(60):
            first = await ctl.execute(attack)
            later = await ctl.execute(py(SNOOP, tests=(Case(),)))
        assert ctl.statistics().runners is not None and ctl.statistics().runners.reused >= 1
        found, mine, host = snooped(later)
        assert host == first.stdout.strip()  # the same sandbox, a later request
        assert found == [] and mine == ["main.py"]
        # A cancelled run's sandbox is not kept.
        with trio.move_on_after(1.0):
            await ctl.execute(py("import time; time.sleep(30)", tests=(Case(),)))
        with trio.fail_after(60):
            after = await ctl.execute(py("print(open('/etc/hostname').read().strip())", tests=(Case(),)))
        assert after.stdout.strip() != host


async def test_idle_runner_sandboxes_expire(controller_with) -> None:
    async with controller_with(runner_idle_s=0.5) as ctl:
        with trio.fail_after(60):
            await ctl.execute(py("print(1)", tests=(Case(),)))
        assert ctl.statistics().runners.idle == 1  # type: ignore[union-attr]
        with trio.fail_after(10):
            while ctl.statistics().containers_alive:
                await trio.sleep(0.1)
        assert ctl.statistics().runners.expired == 1  # type: ignore[union-attr]


async def test_a_killer_loop_never_reaches_the_runner_while_it_cleans_up(one_lane: SandboxController) -> None:
    # The runner cleans up after a step as that step's uid; a `kill -9 -1` loop still
    # running then must not reach it (it did while the runner changed its real uid too:
    # the runner died and every run left in the sandbox came back as `error`).
    killer = sh("(while :; do kill -9 -1 2>/dev/null; done) & (while :; do kill -9 -1 2>/dev/null; done) & wait")
    results = await batch(one_lane, [killer] * 12 + [py("print('still serving')")])
    assert [r.verdict for r in results[:12]] == ["runtime_error"] * 12, results
    assert all(r.exit_code == 137 for r in results[:12]), results
    assert results[12].stdout == "still serving\n", results[12]
