"""Docker sandbox: run generated programs confined, from Trio.

See :mod:`atomic.sandbox.controller` for how a run works, :mod:`atomic.sandbox.run` for
how one is supervised and judged, and :mod:`atomic.sandbox.limits` for what confines it.
"""

from .controller import SandboxController, SandboxStatistics
from .image import build_image
from .limits import Limits, resolve_limits
from .paths import validate_path
from .reaper import reap
from ..contract.documents import ExecutionResult
from .run import TERMINATIONS, Case, Ran, RunSpec, StepResult

__all__ = [
    "TERMINATIONS",
    "Case",
    "ExecutionResult",
    "Limits",
    "Ran",
    "RunSpec",
    "SandboxController",
    "SandboxStatistics",
    "StepResult",
    "build_image",
    "reap",
    "resolve_limits",
    "validate_path",
]
