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
from typing import TYPE_CHECKING, Any

import trio

from .. import errors
from ..errors import JobFailed
from . import prompt as prompts
from .job import Job, State, empty_usage
from ..languages import LANGUAGES, Language

if TYPE_CHECKING:
    from .manager import Services

log = logging.getLogger("atomic.pipeline")

AGENT_LOST = (errors.ConnectionBroken, errors.AgentUnavailable, errors.PoolTimeout, errors.ConnectFailed)


@dataclass
class Attempt:
    messages: list[dict[str, str]]
    answer: str = ""
    files: list[tuple[str, bytes]] | None = None
    execution: dict[str, Any] | None = None


class Pipeline:
    """Runs one job's stages. Created per job; holds no state beyond that job."""

    def __init__(self, job: Job, services: Services) -> None:
        self.job = job
        self.s = services
        self.settings = services.settings
        self.lang: Language = LANGUAGES[job.request["language"]]
        self.outputs: list[tuple[str, bytes]] = []

    async def run(self) -> None:
        job = self.job
        req = job.request

        job.enter(State.PARSING)
        await self.s.persist_soon(job)
        attempt = Attempt(messages=prompts.messages(req["prompt"], self.lang))
        limits = self._limits()

        repairs_left = self.settings.repair_attempts if req.get("execute", True) else 0
        while True:
            job.enter(State.GENERATING)
            await self.s.persist_soon(job)
            attempt.answer = await self.generate(attempt.messages)

            job.enter(State.PACKAGING)
            await self.s.persist_soon(job)
            attempt.files = self.package(attempt.answer)

            if req.get("execute", True):
                job.enter(State.EXECUTING)
                await self.s.persist_soon(job)
                attempt.execution = await self.execute(attempt.files, limits)
                self._record(attempt)
                if self._succeeded(attempt.execution) or repairs_left == 0:
                    break
                repairs_left -= 1
                attempt = Attempt(
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
            how = (f"exit code {ex['exit_code']}" if ex["termination"] == "exited" else ex["termination"])
            if ex.get("verdict") == "compile_error":
                how = "it did not compile"
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
            "provider": req.get("provider"),
            "model": req.get("model"),
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
        }
        span = 0.55 / max(1, self.settings.repair_attempts + 1)
        base = job.progress
        produced = 0

        def on_token(text: str) -> None:
            nonlocal produced
            produced += 1
            job.progress = min(base + span * produced / self.settings.max_tokens, 0.6)
            job.emit({"type": "token", "text": text})

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
                    job.emit({"type": "state", "state": State.GENERATING.value, "progress": job.progress,
                              "retry": attempt + 1})
                    await trio.sleep(min(0.5 * 2**attempt, 5.0))
                    continue
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
            except errors.AtomicError as exc:
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
        # Of this stage's time, how much the model itself took (the agent measures it).
        stage = job.stages[-1] if job.stages else None
        if stage is not None and stage["name"] == State.GENERATING.value:
            stage["model_ms"] = round(float(stage.get("model_ms") or 0.0) + float(done.get("model_ms") or 0.0), 3)
        usage = done.get("usage") or {}
        if job.usage is None:
            job.usage = empty_usage()
        u = job.usage
        u["provider"] = done.get("provider")
        u["model"] = done.get("model")
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            u[key] = int(u.get(key) or 0) + int(usage.get(key) or 0)
        if usage.get("estimated"):
            u["estimated"] = True
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
        records: list[dict[str, Any]] = []
        job.files = records
        for f in extracted:
            try:
                path = validate_path(f.path)
            except errors.ValidationError:
                log.warning("job %s: dropped unsafe path %r from the answer", job.id, f.path)
                continue
            data = f.content.encode()
            files.append((path, data))
            records.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            job.emit({"type": "file", "path": path, "size": len(data)})
        if not files or self.lang.entrypoint not in {p for p, _ in files}:
            raise JobFailed(
                "the model's answer had no usable entry point", code="no_code", stage=State.PACKAGING.value
            )
        return files

    # --- EXECUTING --------------------------------------------------------------------
    def _limits(self) -> Any:
        try:
            return self.s.sandbox.resolve_limits(self.job.request.get("limits") or None)
        except errors.ValidationError as exc:
            raise JobFailed(str(exc), code="validation_error", stage=State.PARSING.value) from None

    async def execute(self, files: list[tuple[str, bytes]], limits: Any) -> dict[str, Any]:
        from ..sandbox import RunSpec

        job = self.job

        def on_output(stream: str, data: str, case: str | int | None = None) -> None:
            event: dict[str, Any] = {"type": "output", "stream": stream, "data": data}
            if case is not None:
                event["case"] = case
            job.emit(event)

        collect = bool(job.request.get("collect"))
        # The sandbox compiles (for a compiled language) and runs the entry point the
        # language's way (atomic/languages.py).
        spec = RunSpec(files=files, stdin=b"", limits=limits, job_id=job.id, collect=collect,
                       language=self.lang.name, entrypoint=self.lang.entrypoint)
        t0 = trio.current_time()
        try:
            result = await self.s.sandbox.execute(spec, on_output=on_output)
        except (errors.SandboxError, errors.LanguageUnavailable) as exc:
            raise JobFailed(str(exc), code=exc.code, stage=State.EXECUTING.value) from None
        self.s.metrics.sandbox_run(result.termination)
        record = result.to_dict()
        # The whole sandbox call (Docker's API round trips included), beside the
        # program's own duration_ms: what is left of EXECUTING is Atomic's.
        record["sandbox_ms"] = round((trio.current_time() - t0) * 1000, 3)
        job.execution = record
        # What the program wrote into its workspace goes into the artifacts, under output/.
        self.outputs = [(f"output/{path}", data) for path, data in (result.files_out or [])]
        job.outputs = [
            {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in self.outputs
        ]
        return record

    @staticmethod
    def _succeeded(execution: dict[str, Any]) -> bool:
        return execution.get("verdict") == "accepted"

    def _rounds(self) -> int:
        """Generate/execute rounds so far (restart markers in ``attempts`` not counted)."""
        return sum(1 for a in self.job.attempts if "attempt" in a)

    def _record(self, attempt: Attempt) -> None:
        self.job.add_attempt(
            {
                "attempt": self._rounds() + 1,
                "files": [dict(f) for f in self.job.files],
                "execution": attempt.execution,
            }
        )

    # --- EXPORTING --------------------------------------------------------------------
    async def export(self, files: list[tuple[str, bytes]]) -> None:
        job = self.job
        try:
            arts = await self.s.artifacts.export(
                job.id, files, job.request.get("export") or ["zip"], meta={"prompt": job.request["prompt"]}
            )
        except errors.AtomicError as exc:
            raise JobFailed(str(exc), code="export_failed", stage=State.EXPORTING.value) from None
        for a in arts:
            a["url"] = f"/api/jobs/{job.id}/artifact?format={a['format']}"
        job.artifacts = arts
