"""The stages of one job, run in order inside the job's own nursery.

PARSING builds the model prompt and plans how programs are judged (:mod:`.judging`);
then the job's candidates (``samples``, :mod:`.candidates`) each go through GENERATING
(tokens from the agent), PACKAGING (the answer into files) and EXECUTING (the program
judged in the sandbox: its test cases and test program), repaired with what failed
for a bounded number of rounds; EXPORTING writes the archives of the candidate kept,
with ``atomic.json`` (:mod:`atomic.contract.provenance`) in each. Every failure becomes a
:class:`~atomic.errors.JobFailed` naming its stage and a machine-readable code.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
import trio
from msgspec import UNSET

from .. import __version__, errors
from ..backoff import backoff
from ..contract import Artifact, Attempt, ExecutionResult, FileEvent, StateEvent, TokenEvent, Usage
from ..contract import OutputEvent, run_limits
from ..contract.provenance import ImageRef, Provenance, Results, Sampling
from ..errors import JobFailed
from ..languages import LANGUAGES, Language
from . import prompt as prompts
from .candidates import Race, Sample, file_records
from .job import Job, State
from .judging import Judging
from .services import Services

if TYPE_CHECKING:
    from ..sandbox import Limits

log = logging.getLogger("atomic.pipeline")

AGENT_LOST = (errors.ConnectionBroken, errors.AgentUnavailable, errors.PoolTimeout, errors.ConnectFailed)
PROVENANCE_FILE = "atomic.json"


class Pipeline:
    """Runs one job's stages. Created per job; holds no state beyond that job."""

    def __init__(self, job: Job, services: Services) -> None:
        self.job = job
        self.s = services
        self.settings = services.settings
        self.lang: Language = LANGUAGES[job.request.language]
        self.judging = Judging.of(job.request)
        self.limits: Limits | None = None

    def repairs(self) -> int:
        """Repair rounds per candidate: the request's, capped by the server's setting."""
        repairs = self.settings.repair_attempts
        if self.job.request.repairs is not None:
            repairs = min(self.job.request.repairs, repairs)
        return repairs

    def temperature(self) -> float:
        req = self.job.request
        return self.settings.temperature if req.temperature is None else req.temperature

    def seed(self) -> int:
        req = self.job.request
        return self.settings.seed if req.seed is None else req.seed

    async def run(self) -> None:
        job = self.job
        req = job.request

        job.enter(State.PARSING)
        job.candidates, job.chosen = (), None  # a job run again after a restart starts over
        await self.s.persist_soon(job)
        messages = prompts.messages(req.prompt, self.lang, self.judging)
        self.limits = self._limits()

        race = Race(self, req.samples, self.seed(), self.repairs(), req.judge_all)
        await race.run(messages)
        kept = race.kept()
        self.show(race)
        if kept is None or kept.files is None:
            raise race.failure()

        job.enter(State.EXPORTING)
        await self.s.persist_soon(job)
        files = self.judging.files(kept.files) if req.execute else kept.files
        await self.export([*files, *kept.outputs], race)

        ex = kept.execution
        if ex is not None and ex.verdict != "accepted":
            raise self._not_passed(race, kept, ex)

    def _not_passed(self, race: Race, kept: Sample, ex: ExecutionResult) -> JobFailed:
        if self.judging.tested:
            passed, total = Judging.score(ex)
            several = f"; best of {len(race.samples)} candidates: #{kept.index}" if race.several else ""
            return JobFailed(
                f"no candidate passed every test ({passed}/{total} passed, {ex.verdict}{several}) after "
                f"{kept.rounds} attempt(s)",
                code="tests_failed", stage=State.EXECUTING.value,
            )
        how = f"exit code {ex.exit_code}" if ex.termination == "exited" else ex.termination
        if ex.verdict == "compile_error":
            how = "it did not compile"
        return JobFailed(
            f"the generated program failed in the sandbox ({how}) after {kept.rounds} attempt(s)",
            code="program_failed", stage=State.EXECUTING.value,
        )

    def show(self, race: Race) -> None:
        """The job's document follows the candidate it would keep now: its files,
        execution and outputs, and every candidate's record."""
        job = self.job
        kept = race.kept()
        job.candidates = race.records(len(self.judging.checks) or 1)
        if kept is None:
            return
        job.chosen = kept.index
        files = kept.files or []
        job.files = file_records(self.judging.files(files) if kept.execution is not None else files)
        job.execution = kept.execution
        job.outputs = file_records(kept.outputs)

    def record(self, sample: Sample, race: Race, execution: ExecutionResult | None) -> None:
        """One round of ``sample`` in the job's attempts."""
        files = sample.packaged or []
        self.job.add_attempt(Attempt(
            attempt=sample.rounds, files=file_records(self.judging.files(files) if execution is not None else files),
            execution=execution, candidate=race.tag(sample)))

    # --- GENERATING -------------------------------------------------------------------
    async def generate(self, messages: list[dict[str, str]], sample: Sample, race: Race) -> str:
        job = self.job
        req = job.request
        request = {
            "messages": messages,
            "provider": req.provider,
            "model": req.model,
            "max_tokens": self.settings.max_tokens,
            "temperature": self.temperature(),
            "seed": sample.seed,
        }
        # GENERATING's share of the progress bar, split over the candidates and rounds.
        span = 0.55 / max(1, self.settings.repair_attempts + 1) / len(race.samples)
        base = job.progress
        produced = 0
        tag = race.tag(sample)

        def on_token(text: str) -> None:
            nonlocal produced
            produced += 1
            job.progress = max(job.progress, min(base + span * produced / self.settings.max_tokens, 0.6))
            job.emit(TokenEvent(text=text, candidate=tag))

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
                    job.emit(StateEvent(state=State.GENERATING.value, progress=job.progress, retry=attempt + 1,
                                        candidate=tag))
                    await trio.sleep(backoff(attempt, self.settings.generation_backoff_s,
                                             self.settings.generation_backoff_cap_s))
                    continue
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
            except errors.AtomicError as exc:
                raise JobFailed(str(exc), code=exc.code, stage=State.GENERATING.value) from None
        # Of GENERATING's time, how much the model itself took (the agent measures it).
        stage = next((st for st in reversed(job.stages) if st.name == State.GENERATING.value), None)
        if stage is not None:
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
    def package(self, answer: str, sample: Sample, race: Race) -> list[tuple[str, bytes]]:
        from ..sandbox import validate_path

        job = self.job
        extracted = prompts.extract_files(answer, self.lang)
        if not extracted:
            raise JobFailed(
                "the model's answer contained no program", code="no_code", stage=State.PACKAGING.value
            )
        files: list[tuple[str, bytes]] = []
        tag = race.tag(sample)
        for f in extracted:
            try:
                path = validate_path(f.path)
            except errors.ValidationError:
                log.warning("job %s: dropped unsafe path %r from the answer", job.id, f.path)
                continue
            if path == PROVENANCE_FILE:
                log.warning("job %s: dropped %s from the answer (the artifact's own)", job.id, path)
                continue
            data = f.content.encode()
            files.append((path, data))
            job.emit(FileEvent(path=path, size=len(data), candidate=tag))
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

    async def judge(self, program: list[tuple[str, bytes]], sample: Sample,
                    race: Race) -> tuple[ExecutionResult, list[tuple[str, bytes]]]:
        """The program judged in the sandbox (:mod:`.judging`): its result, and the files
        it wrote (``collect``, under ``output/``)."""
        from ..sandbox import RunSpec

        job = self.job
        tag = race.tag(sample)

        def on_output(stream: str, data: str, case: str | int | None = None) -> None:
            job.emit(OutputEvent(stream=stream, data=data, case=UNSET if case is None else case,  # type: ignore[arg-type]
                                 candidate=tag))

        # The sandbox compiles (for a compiled language) and runs the entry point the
        # language's way (atomic/languages.py), once per case.
        spec = RunSpec(files=self.judging.files(program), stdin=b"", limits=self.limits, job_id=job.id,
                       collect=job.request.collect, language=self.lang.name, entrypoint=self.lang.entrypoint,
                       tests=self.judging.cases)
        t0 = trio.current_time()
        try:
            ran = await self.s.sandbox.execute_collecting(spec, on_output=on_output)
        except (errors.SandboxError, errors.LanguageUnavailable) as exc:
            raise JobFailed(str(exc), code=exc.code, stage=State.EXECUTING.value) from None
        record = ran.result
        self.s.metrics.sandbox_run(record.termination)
        # The whole sandbox call (Docker's API round trips included), beside the
        # program's own duration_ms: what is left of EXECUTING is Atomic's.
        record.sandbox_ms = round((trio.current_time() - t0) * 1000, 3)
        return record, [(f"output/{path}", data) for path, data in ran.files_out]

    # --- EXPORTING --------------------------------------------------------------------
    async def export(self, files: list[tuple[str, bytes]], race: Race) -> None:
        job = self.job
        files = [*files, (PROVENANCE_FILE, self.provenance(race))]
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

    def provenance(self, race: Race) -> bytes:
        """``atomic.json``: what the job used, enough to run it again (``atomic replay``)."""
        job, req = self.job, self.job.request
        usage = job.usage or Usage()
        ex = job.execution
        assert self.limits is not None
        doc = Provenance(
            version=__version__,
            job_id=job.id,
            created_at=job.created_at,
            prompt=req.prompt,
            language=req.language,
            provider=usage.provider or req.provider,
            model=usage.model or req.model,
            sampling=Sampling(temperature=self.temperature(), seed=self.seed(), seeds=[s.seed for s in race.samples],
                              samples=req.samples, repairs=race.repairs, judge_all=req.judge_all,
                              max_tokens=self.settings.max_tokens),
            limits=self.limits.to_dict(),
            sandbox_image=ImageRef(name=self.s.sandbox.image_for(req.language),
                                   id=self.s.sandbox.image_id(req.language)),
            tests=req.tests,
            test_code=req.test_code,
            results=Results(verdict=ex.verdict if ex else None, passed=ex.passed if ex else None,
                            total=ex.total if ex else None, tests=ex.tests if ex else None),
            candidates=list(job.candidates),
            chosen=job.chosen,
            attempts=list(job.attempts),
            request=req,
        )
        return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"
