"""Best-of-k: a job's ``samples`` candidates, generated, packaged and judged side by side.

Each candidate is one sample of the model (sampling seed ``seed + index``) with its own
repair rounds (:meth:`Race.candidate`). They run concurrently in the job's nursery; the
agent decides how generations share the model (a local model runs a job's samples back
to back and reuses the shared prompt's state). The first candidate to pass wins and the
others are cancelled, unless the job asks to ``judge_all``: then every candidate is
judged to the end and the first passing one by index is kept. When none passes, the
best is kept: most cases passed, then the lowest index.

The job's state is the least advanced stage any live candidate is in (GENERATING while
any generates, then PACKAGING, then EXECUTING), so the stage timeline reads as for one
candidate: a stage lasts while some candidate is still at it, and a repair round takes
the job back to GENERATING as it always did. With more than one sample each candidate's
own stage changes are also sent, as ``state`` events naming it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

import trio
from msgspec import UNSET, UnsetType

from ..contract import Candidate, ExecutionResult, FileRecord, StateEvent
from ..contract.documents import JobError
from ..errors import JobFailed
from ..languages import Language
from . import prompt as prompts
from .job import Job, State
from .judging import Judging
from .services import Services

log = logging.getLogger("atomic.pipeline")

#: Stages a candidate goes through, least advanced first.
ORDER = (State.GENERATING, State.PACKAGING, State.EXECUTING)
SEED_SPACE = 2**32


@dataclass
class Sample:
    """One candidate: its rounds so far and the program it would be kept with."""

    index: int
    seed: int
    rounds: int = 0
    stage: State | None = None  # None: not started, or ended
    packaged: list[tuple[str, bytes]] | None = None  # the latest program (before it is judged)
    files: list[tuple[str, bytes]] | None = None  # the program kept: the last judged one, else the latest
    execution: ExecutionResult | None = None  # its judged run
    outputs: list[tuple[str, bytes]] = field(default_factory=list)  # files it wrote (collect)
    error: JobError | None = None  # why it ended without a (new) judged program
    cancelled: bool = False
    done: bool = False  # it has ended (passed, failed, out of repairs, or cancelled)
    passed_at: int | None = None  # order among the candidates that passed
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def passed(self) -> bool:
        return self.execution is not None and self.execution.verdict == "accepted"

    def record(self, expected_total: int) -> Candidate:
        """The candidate as the job document lists it."""
        passed, total = Judging.score(self.execution)
        verdict = self.execution.verdict if self.execution is not None else None
        if self.cancelled:
            verdict = "cancelled"
        return Candidate(index=self.index, verdict=verdict, passed=passed, total=total or expected_total,
                         attempts=self.rounds, seed=self.seed,
                         error=self.error if self.error is not None and not self.passed else UNSET)


class Rounds(Protocol):
    """What a candidate's rounds are made of: the job's stages (:class:`.stages.Pipeline`)."""

    job: Job
    s: Services
    lang: Language
    judging: Judging

    async def generate(self, messages: list[dict[str, str]], sample: Sample, race: Race) -> str: ...

    def package(self, answer: str, sample: Sample, race: Race) -> list[tuple[str, bytes]]: ...

    async def judge(self, program: list[tuple[str, bytes]], sample: Sample,
                    race: Race) -> tuple[ExecutionResult, list[tuple[str, bytes]]]: ...

    def record(self, sample: Sample, race: Race, execution: ExecutionResult | None) -> None: ...

    def show(self, race: Race) -> None: ...


class Race:
    """A job's candidates, run to a winner (:meth:`run`), and which one is kept (:meth:`kept`)."""

    def __init__(self, pipeline: Rounds, samples: int, seed: int, repairs: int, judge_all: bool) -> None:
        self.p = pipeline
        self.job = pipeline.job
        self.samples = [Sample(i, (seed + i) % SEED_SPACE) for i in range(samples)]
        self.repairs = repairs
        self.judge_all = judge_all
        self._passes = 0

    @property
    def several(self) -> bool:
        return len(self.samples) > 1

    def tag(self, sample: Sample) -> int | UnsetType:
        """The ``candidate`` field of a sample's events: its index, when the job has several."""
        return sample.index if self.several else UNSET

    async def run(self, messages: list[dict[str, str]]) -> None:
        async with trio.open_nursery() as nursery:
            for sample in self.samples:
                nursery.start_soon(self._guarded, sample, messages)

    async def _guarded(self, sample: Sample, messages: list[dict[str, str]]) -> None:
        with sample.scope:
            try:
                await self.candidate(sample, messages)
            except JobFailed as exc:
                sample.error = JobError(code=exc.code, message=exc.message, stage=exc.stage)
                log.info("job %s: candidate %d ended: %s", self.job.id, sample.index, exc.code)
        if sample.scope.cancelled_caught:
            sample.cancelled = True
        sample.done = True
        await self._enter(sample, None)

    async def candidate(self, sample: Sample, messages: list[dict[str, str]]) -> None:
        """One candidate's rounds: generate, package, judge; repaired with what failed
        while it fails and repairs are left."""
        p = self.p
        execute = self.job.request.execute
        repairs_left = self.repairs if execute else 0
        while True:
            await self._enter(sample, State.GENERATING)
            answer = await p.generate(messages, sample, self)
            await self._enter(sample, State.PACKAGING)
            sample.rounds += 1
            sample.packaged = p.package(answer, sample, self)
            if sample.execution is None:
                sample.files = sample.packaged
            if not execute:
                p.record(sample, self, None)
                p.show(self)
                return
            await self._enter(sample, State.EXECUTING)
            execution, outputs = await p.judge(sample.packaged, sample, self)
            sample.files, sample.execution, sample.outputs = sample.packaged, execution, outputs
            sample.error = None
            p.record(sample, self, execution)
            if sample.passed:
                self._passed(sample)
                p.show(self)
                return
            p.show(self)
            if repairs_left == 0:
                return
            repairs_left -= 1
            failure = p.judging.failure(execution)
            messages = prompts.repair_messages(messages, answer, p.lang, execution, failure, p.judging.test_code)

    def _passed(self, sample: Sample) -> None:
        sample.passed_at = self._passes
        self._passes += 1
        if self.judge_all:
            return
        for other in self.samples:
            if other is not sample and not other.done:
                other.scope.cancel()  # the first to pass wins

    async def _enter(self, sample: Sample, stage: State | None) -> None:
        """``sample`` moves to ``stage`` (None: it ended); the job follows the least
        advanced live candidate."""
        if sample.stage == stage:
            return
        sample.stage = stage
        job = self.job
        if stage is not None and self.several:
            job.emit(StateEvent(state=stage.value, progress=round(job.progress, 4), candidate=sample.index))
        live = [s.stage for s in self.samples if s.stage is not None]
        if not live:
            return
        least = min(live, key=ORDER.index)
        if least != job.state:
            job.enter(least)
            with trio.CancelScope(shield=True):  # a cancelled candidate's last word still lands
                await self.p.s.persist_soon(job)

    # --- the outcome --------------------------------------------------------------------
    def kept(self) -> Sample | None:
        """The candidate the job keeps: the first to pass (first by index with
        ``judge_all``); else the judged one with most cases passed (then lowest index);
        else the first with a program; None when no candidate produced one."""
        passing = [s for s in self.samples if s.passed]
        if passing:
            key = (lambda s: s.index) if self.judge_all else (lambda s: s.passed_at)
            return min(passing, key=key)
        judged = [s for s in self.samples if s.execution is not None]
        if judged:
            return max(judged, key=lambda s: (Judging.score(s.execution)[0], -s.index))
        return next((s for s in self.samples if s.files is not None), None)

    def failure(self) -> JobFailed:
        """Why no candidate produced a program: the first candidate's error."""
        for sample in self.samples:
            if sample.error is not None:
                e = sample.error
                return JobFailed(e.message, code=e.code, stage=e.stage or State.GENERATING.value)
        return JobFailed("no candidate produced a program", code="no_code", stage=State.PACKAGING.value)

    def records(self, expected_total: int) -> list[Candidate]:
        return [s.record(expected_total) for s in self.samples]


def file_records(files: list[tuple[str, bytes]]) -> list[FileRecord]:
    return [FileRecord(path=p, size=len(d), sha256=hashlib.sha256(d).hexdigest()) for p, d in files]


__all__ = ["ORDER", "Race", "Rounds", "Sample", "file_records"]
