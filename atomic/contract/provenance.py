"""``atomic.json``: what every artifact records about the job that made it, enough to run
the job again (``atomic replay FILE`` sends the generate body it gives back).

The top-level ``prompt``, ``language``, ``provider``, ``model``, ``limits``, ``tests`` and
``test_code`` and the ``sampling`` parameters are what the job *used* (defaults filled in:
the server's temperature, seed, repair count and limits); ``request`` is what it was
asked, as the job document shows it. A replay asks for what was used, so a server with
other defaults still runs the same job.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from .documents import Attempt, Candidate, CaseResult
from .requests import JobSpec, TestCaseIn
from .types import Verdict


class Sampling(Struct, gc=False):
    temperature: float
    seed: Annotated[int, Meta(description="the job's base seed; sample i used seed + i")]
    seeds: list[int]
    samples: int
    repairs: Annotated[int, Meta(description="repair rounds each candidate was allowed")]
    judge_all: bool
    max_tokens: int


class ImageRef(Struct, gc=False):
    name: str
    id: Annotated[str | None, Meta(description="the image's Docker id (sha256:...)")]


class Results(Struct, gc=False):
    """The kept candidate's judgement."""

    verdict: Verdict | None
    passed: int | None
    total: int | None
    tests: list[CaseResult] | None


class Provenance(Struct, gc=False):
    version: Annotated[str, Meta(description="Atomic's version")]
    job_id: str
    created_at: str
    prompt: str
    language: str
    provider: str | None
    model: str | None
    sampling: Sampling
    limits: dict[str, float | int]
    sandbox_image: ImageRef
    tests: list[TestCaseIn] | None
    test_code: str | None
    results: Results
    candidates: list[Candidate]
    chosen: int | None
    attempts: list[Attempt]
    request: JobSpec


__all__ = ["ImageRef", "Provenance", "Results", "Sampling"]
