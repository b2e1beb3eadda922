"""The stages of one job, run in order inside the job's own nursery.

PARSING builds the model prompt; GENERATING streams tokens from the agent; PACKAGING
turns the answer into files; EXECUTING runs the entry point in the sandbox (and, when it
fails, may send it back to the model for a bounded number of repairs); EXPORTING writes
the archives. Every failure becomes a :class:`~atomic.errors.JobFailed` naming its stage
and a machine-readable code.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .. import errors
from ..backoff import backoff
from ..contract import Artifact, Attempt, ExecutionResult, FileEvent, FileRecord, StateEvent, TokenEvent, Usage
from ..contract import OutputEvent, run_limits
from ..errors import JobFailed
from . import prompt as prompts
from .job import Job, State
from .languages import LANGUAGES, Language
from .services import Services

if TYPE_CHECKING:
    from ..sandbox import Limits

log = logging.getLogger("atomic.pipeline")

AGENT_LOST = (errors.ConnectionBroken, errors.AgentUnavailable, errors.PoolTimeout, errors.ConnectFailed)


@dataclass
class Round:
    """One generate/execute round: what was asked, answered, packaged and run."""

    messages: list[dict[str, str]]
    answer: str = ""
    files: list[tuple[str, bytes]] | None = None
    execution: ExecutionResult | None = None


class Pipeline:
    """Runs one job's stages. Created per job; holds no state beyond that job."""

    def __init__(self, job: Job, services: Services) -> None:
        self.job = job
        self.s = services
        self.settings = services.settings
        self.lang: Language = LANGUAGES[job.request.language]
        self.outputs: list[tuple[str, bytes]] = []

    async def run(self) -> None:
        job = self.job
        req = job.request

        job.enter(State.PARSING)
        await self.s.persist_soon(job)
        attempt = Round(messages=prompts.messages(req.prompt, self.lang))
        limits = self._limits()

        repairs = self.settings.repair_attempts
        if req.repairs is not None:
            repairs = min(req.repairs, repairs)  # the server's setting is the cap
        repairs_left = repairs if req.execute else 0
        while True:
            job.enter(State.GENERATING)
            await self.s.persist_soon(job)
            attempt.answer = await self.generate(attempt.messages)

            job.enter(State.PACKAGING)
            await self.s.persist_soon(job)
            attempt.files = self.package(attempt.answer)

            if req.execute:
                job.enter(State.EXECUTING)
                await self.s.persist_soon(job)
                attempt.execution = await self.execute(attempt.files, limits)
                self._record(attempt)
                if self._succeeded(attempt.execution) or repairs_left == 0:
                    break
                repairs_left -= 1
                attempt = Round(
                    messages=prompts.repair_messages(attempt.messages, attempt.answer, self.lang, attempt.execution)
                )
                continue
            self._record(attempt)
            break

        job.enter(State.EXPORTING)
        await self.s.persist_soon(job)
        await self.export((attempt.files or []) + self.outputs)

        if attempt.execution is not None and not self._succeeded(attempt.execution):
            ex = attempt.execution
            how = f"exit code {ex.exit_code}" if ex.termination == "exited" else ex.termination
            raise JobFailed(
                f"the generated program failed in the sandbox ({how}) after "
                f"{self._rounds()} attempt(s)",
                code="program_failed",
                stage=State.EXECUTING.value,
            )

    # --- GENERATING -------------------------------------------------------------------
    async def generate(self, messages: list[dict[str, str]]) -> str:
        job = self.job
        req = job.request
        request = {
            "messages": messages,
            "provider": req.provider,
            "model": req.model,
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature if req.temperature is None else req.temperature,
            "seed": self.settings.seed if req.seed is None else req.seed,
        }
        span = 0.55 / max(1, self.settings.repair_attempts + 1)
        base = job.progress
        produced = 0

        def on_token(text: str) -> None:
            nonlocal produced
            produced += 1
            job.progress = min(base + span * produced / self.settings.max_tokens, 0.6)
            job.emit(TokenEvent(text=text))

        tries = self.settings.generation_retries + 1
        for attempt in range(tries):
            try:
                with trio.fail_after(self.settings.generate_timeout_s):
                    done = await self.s.agent.generate(request, on_token=on_token)
                break
            except trio.TooSlowError:
                raise JobFailed(
                    f"generation took longer than {self.settings.generate_timeout_s:g} s",
                    code="generation_timeout",
                    stage=State.GENERATING.value,
                ) from None
            except AGENT_LOST as exc:
                if attempt + 1 < tries:
                    log.warning("job %s: agent lost (%s); retrying generation", job.id, exc.code)
                    job.emit(StateEvent(state=State.GENERATING.value, progress=job.progress, retry=attempt + 1))
                    await trio.sleep(backoff(attempt, self.settings.generation_backoff_s,
                                             self.settings.generation_backoff_cap_s))
                    continue
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
            except errors.AtomicError as exc:
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
        # Of this stage's time, how much the model itself took (the agent measures it).
        stage = job.stages[-1] if job.stages else None
        if stage is not None and stage.name == State.GENERATING.value:
            before = stage.model_ms if isinstance(stage.model_ms, float) else 0.0
            stage.model_ms = round(before + float(done.get("model_ms") or 0.0), 3)
        usage = done.get("usage") or {}
        if job.usage is None:
            job.usage = Usage()
        u = job.usage
        u.provider = done.get("provider")
        u.model = done.get("model")
        u.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        u.completion_tokens += int(usage.get("completion_tokens") or 0)
        u.total_tokens += int(usage.get("total_tokens") or 0)
        if usage.get("estimated"):
            u.estimated = True
        self.s.metrics.tokens(done.get("provider"), done.get("model"), usage)
        return str(done.get("text") or "")

    # --- PACKAGING --------------------------------------------------------------------
    def package(self, answer: str) -> list[tuple[str, bytes]]:
        from ..sandbox import validate_path

        job = self.job
        extracted = prompts.extract_files(answer, self.lang)
        if not extracted:
            raise JobFailed(
                "the model's answer contained no program", code="no_code", stage=State.PACKAGING.value
            )
        files: list[tuple[str, bytes]] = []
        records: list[FileRecord] = []
        job.files = records
        for f in extracted:
            try:
                path = validate_path(f.path)
            except errors.ValidationError:
                log.warning("job %s: dropped unsafe path %r from the answer", job.id, f.path)
                continue
            data = f.content.encode()
            files.append((path, data))
            records.append(FileRecord(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
            job.emit(FileEvent(path=path, size=len(data)))
        if not files or self.lang.entrypoint not in {p for p, _ in files}:
            raise JobFailed(
                "the model's answer had no usable entry point", code="no_code", stage=State.PACKAGING.value
            )
        return files

    # --- EXECUTING --------------------------------------------------------------------
    def _limits(self) -> Limits:
        try:
            return self.s.sandbox.resolve_limits(run_limits(self.job.request.limits))
        except errors.ValidationError as exc:
            raise JobFailed(str(exc), code="validation_error", stage=State.PARSING.value) from None

    async def execute(self, files: list[tuple[str, bytes]], limits: Limits) -> ExecutionResult:
        from ..sandbox import RunSpec

        job = self.job

        def on_output(stream: str, data: str) -> None:
            job.emit(OutputEvent(stream=stream, data=data))  # type: ignore[arg-type]

        collect = job.request.collect
        spec = RunSpec(files=files, command=self.lang.command(), stdin=b"", limits=limits, job_id=job.id,
                       collect=collect)
        t0 = trio.current_time()
        try:
            result = await self.s.sandbox.execute(spec, on_output=on_output)
        except errors.SandboxError as exc:
            raise JobFailed(str(exc), code=exc.code, stage=State.EXECUTING.value) from None
        self.s.metrics.sandbox_run(result.termination)
        # The whole sandbox call (Docker's API round trips included), beside the
        # program's own duration_ms: what is left of EXECUTING is Atomic's.
        record = ExecutionResult.of(result, sandbox_ms=round((trio.current_time() - t0) * 1000, 3))
        job.execution = record
        # What the program wrote into its workspace goes into the artifacts, under output/.
        self.outputs = [(f"output/{path}", data) for path, data in (result.files_out or [])]
        job.outputs = [
            FileRecord(path=p, size=len(d), sha256=hashlib.sha256(d).hexdigest()) for p, d in self.outputs
        ]
        return record

    @staticmethod
    def _succeeded(execution: ExecutionResult) -> bool:
        return execution.termination == "exited" and execution.exit_code == 0

    def _rounds(self) -> int:
        """Generate/execute rounds so far (restart markers in ``attempts`` not counted)."""
        return sum(1 for a in self.job.attempts if isinstance(a.attempt, int))

    def _record(self, attempt: Round) -> None:
        self.job.add_attempt(
            Attempt(attempt=self._rounds() + 1, files=list(self.job.files), execution=attempt.execution)
        )

    # --- EXPORTING --------------------------------------------------------------------
    async def export(self, files: list[tuple[str, bytes]]) -> None:
        job = self.job
        try:
            arts = await self.s.artifacts.export(
                job.id, files, list(dict.fromkeys(job.request.export)), meta={"prompt": job.request.prompt}
            )
        except errors.AtomicError as exc:
            raise JobFailed(str(exc), code="export_failed", stage=State.EXPORTING.value) from None
        job.artifacts = [
            Artifact(format=a["format"], url=f"/api/jobs/{job.id}/artifact?format={a['format']}", size=a["size"],
                     sha256=a["sha256"], filename=a["filename"])
            for a in arts
        ]
