"""``WS /ws/stream``: what a client sends, and every event the server sends.

Server events are tagged by ``type``; each frame also carries ``job_id`` and a ``seq``
that rises by one, stamped by the connection that sends it (one event object is shared
by every watcher of a job). ``token`` and ``output`` events may be coalesced for a slow
reader; ``state`` and ``done`` never are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from .documents import ErrorInfo, JobDocument
from .types import Count, Fraction, JobState, NonNegInt, OutputStream, Whole


class FollowMessage(Whole, forbid_unknown_fields=True, gc=False):
    """Follow a job (instead of a generate body, which starts one)."""

    job_id: str
    after_seq: Annotated[NonNegInt, Meta(description="resume after the last seq seen")] | None = None


class CancelMessage(Struct, forbid_unknown_fields=True, gc=False):
    """Sent any time after the first message: cancels the job."""

    type: Literal["cancel"]


class Event(Struct, tag_field="type", kw_only=True, gc=False):
    job_id: str | None = None
    seq: Count = 0


#: On the events of one candidate of a job with ``samples`` > 1: its index (absent with one sample).
CandidateIndex = Annotated[Count, Meta(description="the candidate (sample) it is from, when the job has several")]


class AcceptedEvent(Event, tag="accepted"):
    job: JobDocument


class StateEvent(Event, tag="state"):
    """The job's state; with ``candidate``, that candidate's own stage (the job's state is
    the least advanced stage of its live candidates)."""

    state: JobState
    progress: Fraction
    retry: Annotated[int, Meta(description="a generation retried after the agent was lost")] | UnsetType = UNSET
    candidate: CandidateIndex | UnsetType = UNSET


class TokenEvent(Event, tag="token"):
    text: str
    candidate: CandidateIndex | UnsetType = UNSET


class FileEvent(Event, tag="file"):
    path: str
    size: Count
    candidate: CandidateIndex | UnsetType = UNSET


class OutputEvent(Event, tag="output"):
    stream: OutputStream
    data: str
    case: Annotated[str | int, Meta(description="the test case it is from: its name, else its index")] | UnsetType = UNSET
    candidate: CandidateIndex | UnsetType = UNSET


class DoneEvent(Event, tag="done"):
    job: JobDocument


class ErrorEvent(Event, tag="error"):
    error: ErrorInfo


ServerEvent = AcceptedEvent | StateEvent | TokenEvent | FileEvent | OutputEvent | DoneEvent | ErrorEvent
JobEvent = StateEvent | TokenEvent | FileEvent | OutputEvent | DoneEvent

__all__ = [
    "AcceptedEvent",
    "CancelMessage",
    "DoneEvent",
    "ErrorEvent",
    "Event",
    "FileEvent",
    "FollowMessage",
    "JobEvent",
    "OutputEvent",
    "ServerEvent",
    "StateEvent",
    "TokenEvent",
]
