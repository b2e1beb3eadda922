"""The contract's small types: enumerations and constrained scalars, named once.

Each is an ``Annotated``/``Literal`` type msgspec checks while decoding and turns into
the JSON Schema of ``/openapi.json``, so a rule written here holds in both places.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, get_args

import msgspec
from msgspec import Meta, Struct

from ..languages import LANGUAGES

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
    LanguageName: TypeAlias = str
else:
    LanguageName = Literal[LANGUAGE_NAMES]

# A string with something in it besides whitespace. The character class is spelled out
# so Python's, ECMAScript's and Rust's regex engines (server, clients, fuzzer) agree.
_NOT_BLANK = "[^ \t\n\r\f\v]"
Text = Annotated[str, Meta(min_length=1, pattern=_NOT_BLANK)]
Prompt = Annotated[str, Meta(min_length=1, max_length=32000, pattern=_NOT_BLANK,
                             description="what to build")]
CaseName = Annotated[str, Meta(min_length=1, max_length=200, pattern=_NOT_BLANK,
                               description="shown in results and live output (else the case's index)")]
# Command-line words reach execve: no NUL byte.
Arg = Annotated[str, Meta(pattern="^[^\\x00]*$")]
Word = Annotated[str, Meta(min_length=1, pattern="^[^\\x00]+$")]
# A file path inside the workspace. The pattern states what a schema can (relative, no
# backslash or control character, at most 255 characters); the server also refuses a
# ``..`` component, a path naming the workspace itself, and duplicates (422).
Path = Annotated[str, Meta(min_length=1, max_length=255, pattern="^[^/\\\\\\x00-\\x1f\\x7f][^\\\\\\x00-\\x1f\\x7f]*$")]
Cursor = Annotated[str, Meta(pattern="^[0-9]{1,15}$", description="the `next` of a previous page (opaque)")]
Count = Annotated[int, Meta(ge=0)]  # in documents the server writes
Millis = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]


def whole(**bounds: Any) -> Any:
    """A whole number in a request, as JSON Schema means "integer": ``3`` and ``3.0``
    alike (a client or fuzzer may send either); ``3.5`` and ``"3"`` are refused. Decoded
    as a float that is a multiple of 1; :class:`Whole` Structs turn it into an int, and
    ``/openapi.json`` calls it an integer."""
    return Annotated[float, Meta(multiple_of=1, **bounds)]


if TYPE_CHECKING:  # what the fields hold once decoded
    NonNegInt: TypeAlias = int
    Seed: TypeAlias = int
    ExitCode: TypeAlias = int
    MemoryMb: TypeAlias = int
    Pids: TypeAlias = int
    Samples: TypeAlias = int
else:
    NonNegInt = whole(ge=0)
    Seed = whole(ge=0, le=2**32 - 1)
    ExitCode = whole(ge=0, le=255)
    MemoryMb = whole(ge=16, description="MiB; capped by the server's maximum")
    Pids = whole(ge=8, description="capped by the server's maximum")
    Samples = whole(ge=1, le=8)


class Whole(Struct):
    """A request Struct whose whole-number fields (see :func:`whole`) hold ints once decoded."""

    def __post_init__(self) -> None:
        fields = _WHOLE.get(type(self))
        if fields is None:
            fields = _whole_fields(type(self))
        for name in fields:
            value = getattr(self, name)
            if type(value) is float:
                msgspec.structs.force_setattr(self, name, int(value))  # frozen ones too


def _whole_fields(cls: type) -> frozenset[str]:
    cached = _WHOLE.get(cls)
    if cached is None:
        import msgspec.inspect as mi

        info = mi.type_info(cls)
        cached = _WHOLE[cls] = frozenset(
            f.name for f in info.fields  # type: ignore[attr-defined]
            if any(isinstance(t, mi.FloatType) and t.multiple_of == 1 for t in _alternatives(f.type))
        )
    return cached


def _alternatives(t: Any) -> list[Any]:
    import msgspec.inspect as mi

    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        return [a for u in t.types for a in _alternatives(u)]
    return [t]


_WHOLE: dict[type, frozenset[str]] = {}
