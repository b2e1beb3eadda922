"""Durable state: the jobs database (:mod:`.jobs`) and the artifact files (:mod:`.artifacts`)."""

from .artifacts import FORMATS, ArtifactError, ArtifactStore
from .jobs import TERMINAL_STATES, JobStore, StoreError, StoreStatistics

__all__ = [
    "FORMATS",
    "TERMINAL_STATES",
    "ArtifactError",
    "ArtifactStore",
    "JobStore",
    "StoreError",
    "StoreStatistics",
]
