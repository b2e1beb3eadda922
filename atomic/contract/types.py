"""The contract's small types: enumerations and constrained scalars, named once.

Each is an ``Annotated``/``Literal`` type msgspec checks while decoding and turns into
the JSON Schema of ``/openapi.json``, so a rule written here holds in both places.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, get_args

from msgspec import Meta

from ..pipeline.languages import LANGUAGES

Priority = Literal["low", "normal", "high"]
ExportFormat = Literal["zip", "tar", "git"]
JobState = Literal[
    "QUEUED", "PARSING", "GENERATING", "PACKAGING", "EXECUTING", "EXPORTING", "COMPLETE", "FAILED", "CANCELLED"
]
Termination = Literal["exited", "timeout", "oom", "pids", "output_limit", "cancelled", "error"]
Verdict = Literal[
    "accepted", "wrong_answer", "compile_error", "runtime_error", "timeout", "oom", "pids", "output_limit",
    "cancelled", "error",
]
Compare = Literal["exact", "lines", "tokens"]
OutputStream = Literal["stdout", "stderr"]
Role = Literal["all", "api", "worker"]

PRIORITIES: tuple[str, ...] = get_args(Priority)
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
JOB_STATES: tuple[str, ...] = get_args(JobState)

#: Every language Atomic knows (the language table); whether the sandbox image offers
#: one is a separate, live fact (``GET /api/languages``, 422 ``language_unavailable``).
LANGUAGE_NAMES: tuple[str, ...] = tuple(sorted(LANGUAGES))
if TYPE_CHECKING:
    LanguageName = str
else:
    LanguageName = Literal[LANGUAGE_NAMES]

# A string with something in it besides whitespace. The character class is spelled out
# so Python's, ECMAScript's and Rust's regex engines (server, clients, fuzzer) agree.
_NOT_BLANK = "[^ \t\n\r\f\v]"
Text = Annotated[str, Meta(min_length=1, pattern=_NOT_BLANK)]
Prompt = Annotated[str, Meta(min_length=1, max_length=32000, pattern=_NOT_BLANK,
                             description="what to build")]
# Command-line words reach execve: no NUL byte.
Arg = Annotated[str, Meta(pattern="^[^\\x00]*$")]
Word = Annotated[str, Meta(min_length=1, pattern="^[^\\x00]+$")]
# A file path inside the workspace. The pattern states what a schema can (relative, no
# backslash or control character, at most 255 characters); the server also refuses a
# ``..`` component, a path naming the workspace itself, and duplicates (422).
Path = Annotated[str, Meta(min_length=1, max_length=255, pattern="^[^/\\\\\\x00-\\x1f\\x7f][^\\\\\\x00-\\x1f\\x7f]*$")]
Cursor = Annotated[str, Meta(pattern="^[0-9]{1,15}$", description="the `next` of a previous page (opaque)")]
NonNegInt = Annotated[int, Meta(ge=0)]
Count = Annotated[int, Meta(ge=0)]
Millis = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
Seed = Annotated[int, Meta(ge=0, le=2**32 - 1)]
ExitCode = Annotated[int, Meta(ge=0, le=255)]
