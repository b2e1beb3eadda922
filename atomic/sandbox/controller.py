"""The sandbox controller: runs a program in a confined Docker container, from Trio.

Three ways to run:

* **direct** (cold): create a container whose command is the program, attach, start.
* **exec**: a container started ahead with ``sleep infinity`` (a warm one from the pool,
  or a fresh one when the run collects files), the program started with ``docker exec``.
* **runner**: for a compiled language, test cases or a batch, a container whose main
  process is :mod:`.runner`, which runs each step (the compile, each case, each run of a
  batch lane) as a fresh uid, one at a time (:mod:`.session` drives it); kept a while
  after a clean job for the next one of its image (:mod:`.runners`).

A plain run (direct or exec, :mod:`.plain`) is one program in one container: the program
is ``sh -c 'cp inputs to /workspace && exec "$@" < /atomic/stdin'`` as uid 10001: the
inputs come through a read-only bind mount of a per-run host
directory, the workspace is a size-limited tmpfs (see :mod:`.limits`). The wall clock,
the output caps and cancellation are enforced from the Trio side by killing the whole
container (:mod:`.run` supervises one run and names how it ended); every container is
removed afterwards, shielded and bounded.

This module holds the controller's side: the service (health, reaping, the warm pool),
creating and removing containers, and choosing how each run goes. Every Docker SDK
call runs in a worker thread under one ``CapacityLimiter``; only calls without side
effects are abandoned on cancellation. Docker's exceptions are translated into
:class:`~atomic.errors.SandboxError` / :class:`~atomic.errors.SandboxUnavailable` as
they leave that thread (see :mod:`.engine`), and nowhere else in the server.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from .. import languages as langs
from ..backoff import backoff
from ..config import Settings
from ..errors import AtomicError, LanguageUnavailable, SandboxError, SandboxUnavailable, ValidationError
from . import paths, plain, reaper, session
from .batch import Lanes, run_lane
from .engine import Engine, open_client, translate
from .image import language_record
from .limits import USER, WORKSPACE, Limits, default_limits, host_config_kwargs, resolve_limits
from .pool import PoolStatistics, Sandbox, WarmPool
from .runners import RunnerPool, RunnerStatistics
from ..contract.documents import ExecutionResult, LanguageInfo
from .run import TERMINATIONS, OnOutput, Ran, RunSpec, wrapper
from .session import Plan, Session, plan

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SandboxStatistics:
    available: bool
    runs_active: int
    runs_total: int
    runs_by_termination: dict[str, int]
    containers_alive: int
    warm_ready: int
    warm_target: int
    warm_hits: int
    warm_misses: int
    warm_bypassed: int
    reaped: int
    engine_errors: int
    pool: PoolStatistics
    runners: RunnerStatistics | None = None


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(lambda e: isinstance(e, trio.Cancelled)) is not None
    return False


class SandboxController:
    """Runs programs in sandboxes; ``run`` is its service (health, reaping, warm pool)."""

    def __init__(self, settings: Settings, *, docker_url: str | None = None) -> None:
        self._settings = settings
        self._docker_url = docker_url or settings.docker_host
        self._limiter = trio.CapacityLimiter(settings.threads)
        self._readers = trio.CapacityLimiter(math.inf)  # stream readers block for a whole run
        # Batch runs executing at once, over every batch: each lane holds a sandbox, but
        # runs a job only with a slot, so concurrent batches share the CPUs, not multiply.
        self._lane_slots = trio.CapacityLimiter(settings.batch_lanes)
        self._client: Any = None
        self._available = False
        self._reason: str | None = "not checked yet"
        self._first_probe = trio.Event()  # set once Docker has been asked at least once
        self._last_start = -math.inf  # when the latest run started (trio clock)
        self._languages: list[LanguageInfo] = self._records({})
        self._image_ids: dict[str, str] = {}  # image name -> its Docker id, as of the last probe
        self._last_probe = -math.inf
        self._pool = WarmPool(settings.warm_pool_size, default_limits(settings))
        self._runners: RunnerPool[Session] = RunnerPool(settings.runner_idle_s, settings.batch_lanes)
        self._in_use: set[str] = set()  # container ids and run directory names we own
        self._nursery: trio.Nursery | None = None
        self._health_wakeup = trio.Event()
        self._pid = os.getpid()
        self.owner = f"{self._pid}-{secrets.token_hex(4)}"
        """This controller's ``io.atomic.owner`` label; input directories start with it."""
        self._work_root = reaper.work_root(settings)
        self._active = 0
        self._runs: dict[str, int] = {t: 0 for t in TERMINATIONS}
        self._reaped = 0
        self._engine_errors = 0
        self._engine = Engine(call=self._call, api=self._api, kill=self._kill, settings=lambda: self._settings,
                              limiter=self._limiter, readers=self._readers)

    def __repr__(self) -> str:
        state = "available" if self._available else f"unavailable ({self._reason})"
        return (
            f"<SandboxController {self._settings.sandbox_image} {state} active={self._active} "
            f"containers={self._containers_alive()} pool={self._pool!r}>"
        )

    # --- cached views ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "available": self._available,
            "image": self._settings.sandbox_image,
            "warm": len(self._pool),
            "reason": self._reason,
        }

    def languages(self) -> list[str]:
        """The languages whose image is built (as of the last probe)."""
        return [r.name for r in self._languages if r.available]

    def languages_info(self) -> list[LanguageInfo]:
        """The contract's language records (``GET /api/languages``), as of the last
        probe: no I/O."""
        return list(self._languages)

    def image_id(self, language: str) -> str | None:
        """The Docker id of ``language``'s image (``sha256:...``) as of the last probe; None
        when it is not built or not known yet. No I/O."""
        return self._image_ids.get(self.image_for(language))

    def image_for(self, language: str) -> str:
        return langs.image_name(self._settings.sandbox_image, langs.LANGUAGES[language])

    def require_language(self, language: str) -> langs.Language:
        """The language, if known and its image is built; LanguageUnavailable names the build command."""
        lang = langs.LANGUAGES.get(language)
        if lang is None:
            raise ValidationError("language", "expected one of " + ", ".join(langs.LANGUAGES))
        if self._available and language not in self.languages():
            self._reprobe_soon()
            raise LanguageUnavailable(language, self.image_for(language))
        return lang

    def _records(self, labels: dict[str, dict[str, str] | None]) -> list[LanguageInfo]:
        return [language_record(lang, self.image_for(name), labels.get(self.image_for(name)))
                for name, lang in langs.LANGUAGES.items()]

    def _reprobe_soon(self) -> None:
        """Probe again soon (an image may have been built since): at most once a second."""
        if trio.current_time() - self._last_probe > 1.0:
            self._health_wakeup.set()

    def resolve_limits(self, user: dict[str, Any] | None) -> Limits:
        return resolve_limits(self._settings, user)

    def reconfigure(self, settings: Settings) -> None:
        """Take reloaded limits (defaults, maxima, output cap). Warm containers made with
        the old defaults are still used only by runs whose limits match them."""
        self._settings = settings

    def statistics(self) -> SandboxStatistics:
        pool = self._pool.statistics()
        return SandboxStatistics(
            available=self._available,
            runs_active=self._active,
            runs_total=sum(self._runs.values()),
            runs_by_termination=dict(self._runs),
            containers_alive=self._containers_alive(),
            warm_ready=pool.ready,
            warm_target=pool.target,
            warm_hits=pool.hits,
            warm_misses=pool.misses,
            warm_bypassed=pool.bypassed,
            reaped=self._reaped,
            engine_errors=self._engine_errors,
            pool=pool,
            runners=self._runners.statistics(),
        )

    def _containers_alive(self) -> int:
        return sum(1 for x in self._in_use if len(x) == 64)

    # --- the Docker boundary -----------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, abandon: bool = False) -> T:
        """``fn(*args)`` in a worker thread; Docker's exceptions become ours."""
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=abandon)
        except ValidationError:
            raise  # ours, raised on purpose in the thread: a language's image is missing
        except Exception as exc:  # noqa: BLE001 - translated at this boundary
            err = translate(exc, self._settings.sandbox_image)
            if isinstance(err, SandboxUnavailable):
                self._mark_unavailable(err.message)
            else:
                self._engine_errors += 1
            raise err from None

    def _api(self) -> Any:
        if self._client is None:
            self._client = open_client(self._docker_url, timeout=self._settings.max_timeout_s + 120)
        return self._client.api

    def _probe_sync(self) -> dict[str, dict[str, str] | None]:
        """Ping, then the labels of every language's image (the base one must exist)."""
        import docker.errors

        api = self._api()
        api.ping()
        base = self._settings.sandbox_image
        labels: dict[str, dict[str, str] | None] = {}
        for name in langs.LANGUAGES:
            image = self.image_for(name)
            if image in labels:
                continue
            try:
                info = api.inspect_image(image)
            except docker.errors.ImageNotFound:
                self._image_ids.pop(image, None)
                if image == base:
                    raise
                labels[image] = None
                continue
            labels[image] = dict((info.get("Config") or {}).get("Labels") or {})
            if info.get("Id"):
                self._image_ids[image] = str(info["Id"])
        return labels

    async def _probe(self) -> bool:
        """Check the engine and the image; update the cached status. Never raises SandboxError."""
        self._last_probe = trio.current_time()
        try:
            labels = await self._call(self._probe_sync, abandon=True)
        except SandboxError as exc:
            self._mark_unavailable(exc.message)
            return False
        finally:
            self._first_probe.set()
        if not self._available:
            log.info("sandbox available: %s", self._settings.sandbox_image)
        self._available, self._reason, self._languages = True, None, self._records(labels)
        self._pool.poke()
        return True

    def _mark_unavailable(self, reason: str) -> None:
        if self._available:
            log.warning("sandbox unavailable: %s", reason)
        self._available, self._reason = False, reason
        self._health_wakeup.set()

    async def _require_available(self) -> None:
        if not self._first_probe.is_set():
            # Just started: the first probe is under way; its answer, not a guess.
            if self._nursery is not None:
                await self._first_probe.wait()
            else:
                await self._probe()
        if not self._available and trio.current_time() - self._last_probe > 1.0:
            await self._probe()
        if not self._available:
            raise SandboxUnavailable(f"sandbox unavailable: {self._reason}")

    # --- the service -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the sandbox healthy: probe and reap, fill the warm pool, dispose of containers.

        Reports started at once (the first probe runs in the background), so a server
        comes up even when Docker is down; ``status()`` tells when it is.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._health_loop)
                nursery.start_soon(self._fill_loop, nursery)
                nursery.start_soon(self._expire_loop)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._runners.drain()  # their sandboxes went with the nursery's tasks
            with trio.CancelScope(shield=True):  # each removal is bounded
                async with trio.open_nursery() as cleanup:
                    for sb in self._pool.drain():
                        cleanup.start_soon(self._remove, sb)
                # Last sweep: anything of ours a failed removal left (say, during a Docker
                # outage) goes now, if the engine answers within the cleanup bound.
                if self._available:
                    with trio.move_on_after(self._settings.cleanup_timeout_s):
                        await self.reap()

    async def _health_loop(self) -> None:
        failures = 0
        while True:
            if await self._probe():
                failures = 0
                await self.reap()
                with trio.move_on_after(self._settings.reap_interval_s):
                    await self._health_wakeup.wait()
            else:
                await trio.sleep(backoff(failures, self._settings.sandbox_retry_s, self._settings.sandbox_retry_cap_s))
                failures += 1
            self._health_wakeup = trio.Event()

    async def _fill_loop(self, nursery: trio.Nursery) -> None:
        while True:
            if self._available:
                # The pool refills only after a quiet spell: under a steady stream of runs a
                # refill costs the engine as much as a cold start and competes with the runs.
                quiet = self._last_start + self._settings.warm_refill_quiet_s - trio.current_time()
                if quiet > 0:
                    await trio.sleep(quiet)
                    continue
                for _ in range(self._pool.to_create()):
                    nursery.start_soon(self._make_warm)
            await self._pool.wait_changed()

    async def _make_warm(self) -> None:
        try:
            sb = await self._create_sleeper(self._pool.limits, None, warm=True)
        except SandboxError as exc:
            self._pool.creation_failed()
            log.warning("could not start a warm sandbox: %s", exc)
            if self._available:
                await trio.sleep(1.0)  # an engine error: do not spin
                self._pool.poke()
            return
        self._pool.add(sb)

    async def reap(self) -> int:
        """Remove our containers no run is using, and those of dead Atomic processes."""
        try:
            listed, names = await self._call(reaper.list_candidates, self._api(), self._work_root, abandon=True)
            # Decide here, against the live bookkeeping: a sandbox being created meanwhile
            # is registered by name before it exists, so it is never taken for an orphan.
            ids = reaper.select_orphans(listed, own_pid=self._pid, in_use=self._in_use, owner=self.owner)
            dirs = reaper.select_work_dirs(names, own_pid=self._pid, in_use=self._in_use, owner=self.owner)
            if not ids and not dirs:
                return 0
            n = await self._call(reaper.remove_orphans, self._api(), ids, self._work_root, dirs)
        except SandboxError as exc:
            log.warning("reaping failed: %s", exc)
            return 0
        self._reaped += n
        return n

    # --- containers --------------------------------------------------------------------

    def _new_name(self) -> str:
        return f"{self.owner}-{secrets.token_hex(6)}"

    def _create_sync(self, name: str, run_dir: str, limits: Limits, job_id: str | None, command: list[str], role: str,
                     image: str, runner: bool) -> str:
        import docker.errors

        api = self._api()
        labels = {
            reaper.MANAGED: "1",
            reaper.PID: str(self._pid),
            reaper.HOST: reaper.HOSTNAME,
            reaper.ROLE: role,
            reaper.OWNER: self.owner,
        }
        if job_id:
            labels[reaper.JOB] = job_id
        host_config = api.create_host_config(**host_config_kwargs(self._settings, limits, run_dir, runner=runner))
        if runner:
            paths.write_file(run_dir, session.RUNNER_FILE, session.runner_source())
        try:
            created = api.create_container(
                image,
                command=command,
                user="0:0" if runner else USER,  # the runner: root with three capabilities
                working_dir=WORKSPACE,
                labels=labels,
                name=f"atomic-{name}",
                network_disabled=True,
                host_config=host_config,
                stdin_open=runner,
            )
        except docker.errors.ImageNotFound:
            if image == self._settings.sandbox_image:
                raise
            # A language's image went away: that language is unavailable, not the sandbox.
            lang = next(n for n in langs.LANGUAGES if self.image_for(n) == image)
            raise LanguageUnavailable(lang, image) from None
        return str(created["Id"])

    async def _new_sandbox(self, limits: Limits, job_id: str | None, command: list[str], role: str, warm: bool,
                           image: str | None = None, runner: bool = False) -> Sandbox:
        name = self._new_name()
        self._in_use.add(name)
        image = image or self._settings.sandbox_image
        try:
            run_dir = await trio.to_thread.run_sync(paths.make_run_dir, self._work_root, name)
            cid = await self._call(self._create_sync, name, run_dir, limits, job_id, command, role, image, runner)
        except BaseException as exc:
            if isinstance(exc, LanguageUnavailable):
                self._reprobe_soon()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(paths.remove_run_dir, os.path.join(self._work_root, name))
            self._in_use.discard(name)
            raise
        self._in_use.add(cid)
        return Sandbox(container_id=cid, run_dir=run_dir, name=name, limits=limits, warm=warm)

    async def _create_sleeper(self, limits: Limits, job_id: str | None, *, warm: bool,
                              image: str | None = None) -> Sandbox:
        sb = await self._new_sandbox(limits, job_id, ["sleep", "infinity"], "warm" if warm else "exec", warm, image)
        try:
            await self._call(self._api().start, sb.container_id)
        except BaseException:
            await self._remove(sb)
            raise
        return sb

    async def _kill(self, sb: Sandbox) -> None:
        import docker.errors

        def kill() -> None:
            try:
                self._api().kill(sb.container_id)
            except docker.errors.APIError as exc:  # already stopped: nothing to kill
                if exc.status_code not in (404, 409):
                    raise

        await self._call(kill)

    async def _remove(self, sb: Sandbox) -> None:
        """Kill and remove the container and its input directory. Idempotent."""
        import docker.errors

        def remove() -> None:
            try:
                self._api().remove_container(sb.container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise
            paths.remove_run_dir(sb.run_dir)

        try:
            # Removal is idempotent and the reaper backs it up, so the cleanup deadline may
            # abandon it: the thread still finishes, we only stop waiting.
            with trio.move_on_after(self._settings.cleanup_timeout_s, shield=True):
                await self._call(remove, abandon=True)
        except SandboxError as exc:
            log.warning("could not remove sandbox %s: %s", sb.container_id[:12], exc)
        finally:
            self._in_use.discard(sb.container_id)
            self._in_use.discard(sb.name)

    def _dispose(self, sb: Sandbox) -> None:
        """Remove ``sb`` in the background (the service's nursery), a little later."""
        assert self._nursery is not None
        self._nursery.start_soon(self._remove_later, sb)

    async def _remove_later(self, sb: Sandbox) -> None:
        try:
            # Removal costs the engine ~100 ms of CPU while the job that used the container
            # has a few ms left (archives, the final commit): the job goes first.
            await trio.sleep(self._settings.sandbox_dispose_s)
        finally:  # a shutdown cancels the pause, never the removal
            await self._remove(sb)

    # --- runs --------------------------------------------------------------------------

    async def execute(self, spec: RunSpec, on_output: OnOutput | None = None) -> ExecutionResult:
        """Run ``spec`` to completion: the contract's result (see :meth:`run`)."""
        return (await self.execute_collecting(spec, on_output)).result

    async def execute_collecting(self, spec: RunSpec, on_output: OnOutput | None = None) -> Ran:
        """Run ``spec`` to completion; the result, and the files the program wrote when
        ``spec.collect`` (plain runs). Program failures are results, not exceptions.

        Raises ValidationError (bad files or command, before any container),
        LanguageUnavailable (its image is not built), SandboxUnavailable (no engine or
        image) or SandboxError (engine failure). If cancelled, the container is killed
        and removed before Cancelled propagates.
        """
        limits, files, lang = session.check(spec, self._settings, self._pool.limits)
        await self._require_available()
        self.require_language(lang.name)
        if lang.compiled or spec.tests is not None:
            p = plan(spec, files, limits)
            async with self._session(self.image_for(lang.name), session.limits_for_start(p, self._settings)) as sess:
                return Ran(await self._judged(sess, p, on_output))

        image = self.image_for(lang.name)
        argv = [*(spec.command or lang.command(spec.entrypoint or lang.default_entry(f for f, _ in files))),
                *spec.args]
        sb = self._pool.take_nowait(limits) if image == self._settings.sandbox_image else None
        self._last_start = trio.current_time()
        self._active += 1
        termination = "error"
        try:
            if sb is not None or spec.collect:
                if sb is None:
                    sb = await self._create_sleeper(limits, spec.job_id, warm=False, image=image)
                result = await plain.run_exec(self._engine, sb, argv, spec, files, limits, on_output)
            else:
                sb = await self._new_sandbox(limits, spec.job_id, wrapper(argv, limits), "run", warm=False, image=image)
                result = await plain.run_direct(self._engine, sb, spec, files, limits, on_output)
            termination = result.result.termination
            return result
        except BaseException as exc:
            if _is_cancellation(exc):
                termination = "cancelled"
            raise
        finally:
            self._active -= 1
            self._runs[termination] += 1
            if sb is not None:
                if self._nursery is not None and termination not in ("cancelled", "error"):
                    self._dispose(sb)  # the result need not wait for the removal
                else:
                    await self._remove(sb)  # shielded and bounded inside
            if self._pool.size:
                self._pool.poke()

    async def execute_batch(self, specs: list[RunSpec]) -> list[ExecutionResult | AtomicError]:
        """Run every spec in runner sandboxes, ``batch_lanes`` sandboxes at a time, each
        serving one run after another (:mod:`.runner` keeps them apart). Results come in
        order; a run that cannot be run (bad input, language not built, engine failure)
        has its error in its place. Cancelled: every sandbox is removed first."""
        results: list[ExecutionResult | AtomicError | None] = [None] * len(specs)
        todo: list[tuple[int, str, Plan]] = []
        for i, spec in enumerate(specs):
            try:
                limits, files, lang = session.check(spec, self._settings, self._pool.limits)
                todo.append((i, self.image_for(lang.name), plan(spec, files, limits)))
            except ValidationError as exc:
                results[i] = exc
        if todo:
            await self._require_available()
            ready = []
            for i, image, p in todo:
                try:
                    self.require_language(p.language.name)
                    ready.append((i, image, p))
                except ValidationError as exc:
                    results[i] = exc
            lanes = Lanes(ready, self._settings.batch_lanes)

            def sandbox(image: str, first: Plan) -> contextlib.AbstractAsyncContextManager[Session]:
                return self._session(image, session.limits_for_start(first, self._settings))

            async def judged(sess: Session, p: Plan) -> ExecutionResult:
                async with self._lane_slots:
                    return await self._judged(sess, p, None)

            async with trio.open_nursery() as nursery:
                for _ in range(lanes.count):
                    nursery.start_soon(run_lane, lanes, results, sandbox, judged)
        return [r if r is not None else SandboxError("the run was not started") for r in results]

    @contextlib.asynccontextmanager
    async def _session(self, image: str, limits: Limits) -> AsyncIterator[Session]:
        """A runner sandbox of ``image``: an idle one, else a new one created with ``limits``.
        Kept afterwards when its job ended cleanly (:mod:`.runners`), else removed at once."""
        self._last_start = trio.current_time()
        if self._nursery is None:  # no service running: a sandbox for this use only
            sb = await self._new_runner(image, limits)
            try:
                async with session.serving(sb, self._engine) as one:
                    yield one
            finally:
                await self._remove(sb)
            return
        sess, dead = self._runners.take(image)
        for gone in dead:
            gone.closed.set()
        if sess is None:
            sess = await self._nursery.start(self._serve_runner, await self._new_runner(image, limits))
        clean = False
        try:
            yield sess
            clean = not sess.broken
        finally:
            if clean:
                for extra in self._runners.put(image, sess, trio.current_time()):
                    extra.closed.set()
            else:
                await self._remove(sess.sb)  # shielded and bounded: gone before a cancel returns
                sess.closed.set()

    async def _new_runner(self, image: str, limits: Limits) -> Sandbox:
        # No job label: a runner sandbox serves many jobs.
        return await self._new_sandbox(limits, None, session.RUNNER_COMMAND, "runner", warm=False, image=image,
                                       runner=True)

    async def _serve_runner(self, sb: Sandbox, *, task_status: trio.TaskStatus[Session]) -> None:
        """A runner sandbox's session, alive in the service until it is closed."""
        try:
            async with session.serving(sb, self._engine) as sess:
                task_status.started(sess)
                await sess.closed.wait()
        finally:
            if sb.container_id in self._in_use:
                await self._remove(sb)

    async def _expire_loop(self) -> None:
        while True:
            await trio.sleep(min(1.0, max(0.05, self._runners.keep_s / 4)))
            for sess in self._runners.expired(trio.current_time()):
                sess.closed.set()

    async def _judged(self, sess: Session, p: Plan, on_output: OnOutput | None) -> ExecutionResult:
        self._active += 1
        termination = "error"
        try:
            result = await sess.run(p, on_output)
            termination = result.termination
            return result
        except BaseException as exc:
            if _is_cancellation(exc):
                termination = "cancelled"
            raise
        finally:
            self._active -= 1
            self._runs[termination] += 1
