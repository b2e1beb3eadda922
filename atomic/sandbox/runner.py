"""The runner: Atomic's one process inside a runner sandbox (compile steps, test cases, batches).

It is not imported by the server: the controller copies this file into the sandbox's
read-only input directory and the image's own ``python3`` runs it as the container's
main process. It uses only the standard library.

Why it exists: starting a container (or a ``docker exec``) per program costs the engine
far more than a short program takes, so one container serves a whole execute request
(its compile and every test case) or a lane of a batch. What the programs share, and
how they are kept apart:

* The runner is root in the container but holds only CAP_SETUID, CAP_SETGID and CAP_KILL
  (Docker drops the rest; ``no-new-privileges``). It never runs user code itself.
* Every process it starts (a compiler, a test case) is a child that becomes a fresh uid
  and gid, never used before in this container, with no supplementary groups, before it
  executes anything: it holds no capability (setuid from root clears them, and
  no-new-privileges stops it gaining any).
* Steps run one at a time. When a step ends, every process of its uid is killed
  (``kill(-1)`` sent as that uid, which reaches exactly its processes, repeated until
  none is left) and its files are removed, before the next step starts: a step never
  coexists with another's processes, so it can neither see nor signal them, and finds
  nothing of an earlier step's.
* Each step works in its own directories, mode 0700, with a copy of the job's files:
  ``/workspace/<random>`` (its working directory and HOME) and ``/tmp/<random>`` (its
  TMPDIR, where compilers keep their caches). ``/workspace`` and ``/tmp`` are root's,
  mode 1733: anyone may create an entry, nobody else may list or remove it.
* Wall clock, output caps and RLIMIT_CPU are enforced here per step; memory and process
  counts by the container's cgroup (the controller sets them per step, and each step is
  alone in the container), whose event counters say whether a step hit them.

Protocol: JSON lines. In, on stdin: ``{"op": "job", ...}`` (see :func:`Runner.job`),
then, after a compile step when there are cases, ``{"op": "go"}`` or ``{"op": "stop"}``;
``{"op": "exit"}`` ends the runner. Out, on stdout: ``{"ev": "ready"}``, then per job
``{"ev": "out", "step", "s": 1|2, "d": base64}`` as output arrives, ``{"ev": "end",
"step", "exit_code", "termination", "duration_ms", "truncated"}`` per step and
``{"ev": "done"}``. ``step`` is ``"compile"`` or the case's index. Diagnostics go to stderr.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import stat
import sys
import time
from typing import Any

FIRST_UID = 20000
WORKSPACE = "/workspace"
TMP = "/tmp"
SHARED_DIRS = (WORKSPACE, TMP, "/dev/shm", "/dev/mqueue")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a process prints when fork/clone fails with EAGAIN (the pids limit).
FORK_MARKERS = ("Resource temporarily unavailable", "BlockingIOError", "fork: retry", "Cannot fork",
                "unable to create native thread", "failed to create new OS thread")
CHUNK = 65536
EXEC_FAILED = b"exec:"


def emit(event: dict[str, Any]) -> None:
    data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]


class Counters:
    """The container's cgroup event counters: OOM kills and fork failures at the pids limit."""

    FILES = (
        ("oom", "/sys/fs/cgroup/memory.events", "oom_kill"),
        ("oom", "/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
        ("pids", "/sys/fs/cgroup/pids.events", "max"),
        ("pids", "/sys/fs/cgroup/pids/pids.events", "max"),
    )

    def __init__(self) -> None:
        self.files = [(kind, path, key) for kind, path, key in self.FILES if os.path.exists(path)]
        self.kinds = {kind for kind, _, _ in self.files}

    def read(self) -> dict[str, int]:
        out = {"oom": 0, "pids": 0}
        for kind, path, key in self.files:
            try:
                with open(path) as fh:
                    for line in fh:
                        k, _, v = line.partition(" ")
                        if k == key and v.strip().isdigit():
                            out[kind] = max(out[kind], int(v))
            except OSError:
                pass
        return out


class Runner:
    def __init__(self) -> None:
        self.next_uid = FIRST_UID
        self.counters = Counters()
        self.stdin = sys.stdin.buffer
        self._libc: Any = None

    # --- identities ----------------------------------------------------------------
    def new_uid(self) -> int:
        uid = self.next_uid
        self.next_uid += 1
        return uid

    def as_user(self, uid: int, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` with the effective uid and gid ``uid`` (files it makes are the step's);
        root (and its capabilities) again after.

        Only the effective ids change: the runner's real and saved uid stay 0, so while it
        works as ``uid`` no process of that uid may signal it (a signal needs the sender's
        uid to match the target's real or saved uid). With the real uid changed too, a
        step's ``kill -9 -1`` loop could kill the runner in the moment it cleaned up after
        that step, and every run still queued in the sandbox was lost.
        """
        os.setresgid(-1, uid, -1)
        os.setresuid(-1, uid, -1)
        try:
            return fn(*args)
        finally:
            os.setresuid(-1, 0, -1)
            os.setresgid(-1, 0, -1)

    def kill_all(self, uid: int) -> None:
        """SIGKILL every process of ``uid``: ``kill(-1)`` sent with the effective uid ``uid``
        reaches them and never the sender (nor init). The runner's real uid stays root, so
        root's processes would be reached too: in a runner sandbox there are none but init
        and the runner itself. The kernel walks the tasks under a lock fork also takes, so
        a fork bomb cannot outrun one call; repeated until only zombies are left. No helper
        process is forked for it: a fork bomb may hold every pid the sandbox has."""
        for _ in range(500):
            if not self.as_user(uid, _kill_everything):
                return
            if not self._live(uid):
                return
            time.sleep(0.002)
        print(f"runner: processes of uid {uid} survive SIGKILL", file=sys.stderr, flush=True)

    @staticmethod
    def _live(uid: int) -> bool:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/status") as fh:
                    text = fh.read()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields.get("State", "").strip().startswith("Z"):
                return True
        return False

    def purge(self, uid: int, dirs: list[str]) -> None:
        """Kill ``uid``'s processes, then remove its directories and anything else it left."""
        self.kill_all(uid)
        leftovers = list(dirs)
        for top in SHARED_DIRS:
            try:
                names = os.listdir(top)
            except OSError:
                continue
            for name in names:
                path = os.path.join(top, name)
                try:
                    if os.lstat(path).st_uid == uid and path not in leftovers:
                        leftovers.append(path)
                except OSError:
                    pass
        self.as_user(uid, _remove_all, leftovers)
        self._remove_ipc(uid)

    def _remove_ipc(self, uid: int) -> None:
        """System V IPC objects the uid created (shared memory, semaphores, queues)."""
        found: list[tuple[str, int]] = []
        for kind in ("shm", "sem", "msg"):
            try:
                with open(f"/proc/sysvipc/{kind}") as fh:
                    rows = fh.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                # key id perms ... uid is the column after the kind's sizes/pids
                owner = {"shm": 7, "sem": 4, "msg": 7}[kind]
                if len(cols) > owner and cols[owner] == str(uid):
                    found.append((kind, int(cols[1])))
        if not found:
            return
        if self._libc is None:
            self._libc = ctypes.CDLL(None, use_errno=True)
        libc = self._libc

        def remove() -> None:
            for kind, ident in found:
                if kind == "shm":
                    libc.shmctl(ident, 0, None)  # IPC_RMID
                elif kind == "sem":
                    libc.semctl(ident, 0, 0)
                else:
                    libc.msgctl(ident, 0, None)

        self.as_user(uid, remove)

    # --- a job ---------------------------------------------------------------------
    def job(self, msg: dict[str, Any]) -> None:
        """``files`` ([path, base64] pairs), ``env`` (values may hold ``{tmp}``),
        ``compile`` (a step or null) and ``cases`` (steps, each with ``stdin`` in base64).
        A step is ``{argv, timeout_s, cpu_s}``; ``output_limit`` caps each stream of each step."""
        build_uid = self.new_uid()
        tag = secrets.token_hex(8)
        build_dir, build_tmp = f"{WORKSPACE}/b{tag}", f"{TMP}/b{tag}"
        limit = int(msg["output_limit"])
        env = dict(msg.get("env") or {})
        try:
            try:
                problem = self.as_user(build_uid, _prepare, build_dir, build_tmp, msg.get("files") or [])
            except OSError as exc:
                problem = f"cannot write the files: {exc}"
            if problem:
                emit({"ev": "fail", "message": problem})
                return
            step = msg.get("compile")
            cases = msg.get("cases") or []
            if step:
                self.run_step("compile", build_uid, build_dir, build_tmp, None, step, env, b"", limit, umask=0o022)
                self.kill_all(build_uid)
                if cases and self._read().get("op") != "go":
                    return
            for i, case in enumerate(cases):
                uid = self.new_uid()
                ctag = secrets.token_hex(8)
                work, tmp = f"{WORKSPACE}/c{ctag}", f"{TMP}/c{ctag}"
                try:
                    stdin = base64.b64decode(case.get("stdin") or "")
                    self.run_step(i, uid, work, tmp, build_dir, case, env, stdin, limit, umask=0o077)
                finally:
                    self.purge(uid, [work, tmp])
        finally:
            self.purge(build_uid, [build_dir, build_tmp])
            emit({"ev": "done"})

    def run_step(self, label: Any, uid: int, work: str, tmp: str, copy_from: str | None, step: dict[str, Any],
                 env: dict[str, str], stdin: bytes, limit: int, *, umask: int) -> None:
        argv = [str(a) for a in step["argv"]]
        timeout = float(step["timeout_s"])
        environ = {"PATH": PATH, "HOME": work, "TMPDIR": tmp, "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        environ.update({k: str(v).replace("{tmp}", tmp) for k, v in env.items()})
        try:
            # Its directories and its stdin, made as its uid (here, not in the child: a
            # forked Python touching its heap costs milliseconds of copy-on-write).
            stdin_fd = self.as_user(uid, _workspace, work, tmp, copy_from, stdin)
        except OSError as exc:
            print(f"runner: step {label} could not be set up: {exc}", file=sys.stderr, flush=True)
            self._end(label, None, "error", 0.0, False)
            return
        before = self.counters.read()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        serr_r, serr_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: become uid and exec; never returns
            _child(uid, work, argv, environ, int(step["cpu_s"]), umask, stdin_fd, err_w, out_w, serr_w)
        for fd in (err_w, out_w, serr_w, stdin_fd):
            os.close(fd)
        failure = _read_all(err_r)
        t0 = time.monotonic()
        out = {1: 0, 2: 0}
        stderr_tail = bytearray()
        killed: str | None = None
        status: int | None = None
        truncated = False
        if failure:
            os.close(out_r)
            os.close(serr_r)
            _, status = os.waitpid(pid, 0)
            self.kill_all(uid)
            if failure.startswith(EXEC_FAILED):  # like a shell: command not found is exit 127
                msg = failure[len(EXEC_FAILED):] + b"\n"
                emit({"ev": "out", "step": label, "s": 2, "d": base64.b64encode(msg).decode()})
                self._end(label, 127, "exited", 0.0, False)
            else:
                print(f"runner: step {label} could not start: {failure.decode(errors='replace')}",
                      file=sys.stderr, flush=True)
                self._end(label, None, "error", 0.0, False)
            return
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, 1)
        sel.register(serr_r, selectors.EVENT_READ, 2)
        pidfd = _pidfd(pid)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, 0)
        deadline = t0 + timeout
        ended_at: float | None = None
        drain_until: float | None = None
        pipes = 2
        while status is None or pipes:
            now = time.monotonic()
            if status is None and killed is None and now >= deadline:
                killed = "timeout"
                self.kill_all(uid)
            if status is None:
                wait = 0.005 if pidfd is None or killed else min(deadline - now, 1.0)
            else:
                # Every process of the step is dead, so the pipes end now; bounded all the same.
                drain_until = drain_until or now + 1.0
                if now >= drain_until:
                    break
                wait = drain_until - now
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                which = key.data
                if which == 0:
                    sel.unregister(key.fd)
                    continue
                try:
                    data = os.read(key.fd, CHUNK)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    pipes -= 1
                    continue
                room = limit - out[which]
                if len(data) > room:
                    data = data[:max(room, 0)]
                    if not truncated:
                        truncated = True
                        if killed is None and status is None:
                            killed = "output_limit"
                            self.kill_all(uid)
                if data:
                    out[which] += len(data)
                    if which == 2:
                        stderr_tail = (stderr_tail + data)[-4096:]
                    emit({"ev": "out", "step": label, "s": which, "d": base64.b64encode(data).decode()})
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status, ended_at = st, time.monotonic()
                    self.kill_all(uid)  # what it left running: the step is over
        for key in list(sel.get_map().values()):
            sel.unregister(key.fd)
            if key.data:
                os.close(key.fd)
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if status is None:
            _, status = os.waitpid(pid, 0)
        duration = ((ended_at or time.monotonic()) - t0) * 1000
        after = self.counters.read()
        oom = after["oom"] > before["oom"]
        pids = after["pids"] > before["pids"]
        if not pids and "pids" not in self.counters.kinds:
            pids = any(m.encode() in stderr_tail for m in FORK_MARKERS)
        code: int | None
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            code = 128 + os.WTERMSIG(status)
        else:
            code = None
        if killed is not None:
            code = None
        if pids:
            termination = "pids"
        elif oom:
            termination = "oom"
        elif killed is not None:
            termination = killed
        elif code is None:
            termination = "error"
        else:
            termination = "exited"
        self._end(label, code, termination, duration, truncated)

    @staticmethod
    def _end(label: Any, code: int | None, termination: str, duration_ms: float, truncated: bool) -> None:
        emit({"ev": "end", "step": label, "exit_code": code, "termination": termination,
              "duration_ms": round(duration_ms, 3), "truncated": truncated})

    def _read(self) -> dict[str, Any]:
        line = self.stdin.readline()
        if not line:
            return {"op": "exit"}
        return dict(json.loads(line))

    def serve(self) -> None:
        emit({"ev": "ready", "counters": sorted(self.counters.kinds)})
        while True:
            msg = self._read()
            op = msg.get("op")
            if op == "exit":
                return
            if op == "job":
                self.job(msg)
            # "go" / "stop" outside a job: a job that ended early; nothing to do.


def _kill_everything() -> bool:
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _remove_all(paths: list[str]) -> None:
    def unlock(func: Any, path: str, _exc: Any) -> None:
        # A step may have made its own directories unwritable or unreadable: it owns
        # them, so its uid may open them again.
        parent = os.path.dirname(path)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass

    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                os.chmod(path, 0o700)
            except OSError:
                pass
            shutil.rmtree(path, onerror=unlock)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _safe(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "\0" not in path


def _prepare(build_dir: str, build_tmp: str, files: list[list[str]]) -> str | None:
    """The build directory with the job's files (readable by the job's later steps)."""
    os.mkdir(build_dir, 0o755)
    os.chmod(build_dir, 0o755)
    os.mkdir(build_tmp, 0o700)
    for path, b64 in files:
        if not _safe(path):
            return f"unsafe path {path!r}"
        cur = build_dir
        parts = path.split("/")
        for part in parts[:-1]:
            cur = os.path.join(cur, part)
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                if os.path.islink(cur) or not os.path.isdir(cur):
                    return f"{path!r} clashes with another file"
        fd = os.open(os.path.join(cur, parts[-1]), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            view = memoryview(base64.b64decode(b64))
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return None


def _workspace(work: str, tmp: str, copy_from: str | None, stdin: bytes) -> int:
    """A step's directories (a copy of the build directory, unless it is the compile) and
    its stdin, as an open descriptor of an already removed file."""
    if copy_from is not None:
        shutil.copytree(copy_from, work, symlinks=True)
        os.chmod(work, 0o700)
        os.mkdir(tmp, 0o700)
    name = os.path.join(tmp, ".stdin")
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(stdin)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    finally:
        os.unlink(name)
    return fd


def _child(uid: int, work: str, argv: list[str], environ: dict[str, str], cpu_s: int, umask: int, stdin_fd: int,
           err_w: int, out_w: int, serr_w: int) -> None:
    stage = "setup"
    try:
        os.setsid()
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")  # the OOM killer takes the program, not the runner
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # every capability goes with root
        os.umask(umask)
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(serr_w, 2)
        os.chdir(work)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        stage = "exec"
        os.execvpe(argv[0], argv, environ)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then gone
        if stage == "exec":
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, FileNotFoundError):
                reason = "command not found"
            msg = EXEC_FAILED + f"{argv[0]}: {reason}".encode()
        else:
            msg = f"{type(exc).__name__}: {exc}".encode()
        try:
            os.write(err_w, msg)
        finally:
            os._exit(127)


def _read_all(fd: int) -> bytes:
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return bytes(data)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            raise
        return None


def main() -> int:
    os.umask(0o022)
    os.setgroups([])  # root's supplementary groups are never needed, nor handed down
    for top in (WORKSPACE, TMP):
        # Root owns these tmpfs mounts (Docker gives them the image directory's mode, so
        # the mode is set here): anyone may create an entry, nobody else may list or remove it.
        os.chmod(top, 0o1733)
    for fd in (1, 2):
        os.set_blocking(fd, True)
    Runner().serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
