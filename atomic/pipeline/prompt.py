"""PARSING and PACKAGING: the model prompt for a language, and files out of an answer.

The prompt asks for fenced code blocks, one per file, with the file name on the fence
(```python main.py). Small models forget the name or the fence, so extraction accepts,
in order of trust: a name on the fence, a name on the line just before the block
(``main.py:``, ``**main.py**``, ``# main.py``), a ``# file: NAME`` first line, and
finally the language's default entry point. An answer with no fence at all is taken as
the program itself when it looks like code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..languages import Language

if TYPE_CHECKING:
    from ..contract import ExecutionResult
    from .judging import Failure, Judging

SYSTEM = (
    "You are a careful {display} programmer. Write a complete, runnable program for the "
    "user's request. Reply with the code in one fenced code block: ```{fence} {entry} on "
    "the first line, then the code, then ```. If more files are needed, give each its own "
    "block with its file name after the language. The program is {how} with "
    "no network access and no input, so it must not ask for input. Keep explanations short."
)

REPAIR = (
    "The program did not work. It was {how} and ended with {verdict}.\n"
    "{output}\n"
    "Reply with the complete corrected program in the same format."
)


def how_run(lang: Language) -> str:
    """How the sandbox runs a program in ``lang``, in words for the model."""
    compile = lang.compile_command([lang.entrypoint])
    run = f"run as `{' '.join(lang.command())}`"
    return f"compiled with `{' '.join(compile)}` and {run}" if compile else run

_FENCE = re.compile(
    r"^(?P<indent>[ \t]{0,3})(?P<ticks>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)"
    r"^(?P=indent)?(?P=ticks)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_NAME = re.compile(r"(?P<name>[\w][\w./-]*\.[A-Za-z0-9]{1,8})")
_FILE_MARK = re.compile(r"^\s*(?:#|//|--)\s*(?:file(?:name)?\s*:\s*)(?P<name>\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractedFile:
    path: str
    content: str


def messages(prompt: str, lang: Language, judging: Judging | None = None) -> list[dict[str, str]]:
    """The chat messages that ask the model for a program.

    The system prompt is the same for every job of a language (a local model keeps its
    evaluated state across jobs); how the program will be judged goes with the request.
    The test cases themselves are not shown: they judge the program, and a repair is
    told the case it failed.
    """
    system = SYSTEM.format(display=lang.display, fence=lang.fences[0], entry=lang.entrypoint, how=how_run(lang))
    note = judged_by(judging) if judging is not None else ""
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt + note}]


def judged_by(judging: Judging) -> str:
    """What the model is told about the checks its program must pass ("" for none)."""
    cases = [c.case for c in judging.checks if c.case is not None]
    parts = []
    if cases:
        given = []
        if any(c.stdin for c in cases):
            given.append("its input on standard input (read it from there; nobody types at a prompt)")
        if any(c.args for c in cases):
            given.append("command-line arguments")
        how = f", given {' and '.join(given)}" if given else ""
        parts.append(f"It will be tested by running it{how} and comparing what it prints with the expected "
                     "output, so print exactly what is asked and nothing else.")
    if judging.test_code is not None and judging.lang.test_hint:
        parts.append(judging.lang.test_hint)
    return "\n\n" + " ".join(parts) if parts else ""


def repair_messages(
    previous: list[dict[str, str]], answer: str, lang: Language, execution: ExecutionResult,
    failure: Failure | None = None, test_code: str | None = None,
) -> list[dict[str, str]]:
    """Send a failing program back with what went wrong: the check it failed (a test
    case's input, expected and actual output and verdict; the test program and its
    output), else how the run ended."""
    if failure is not None and execution.verdict != "compile_error":
        feedback = _failed_check(lang, failure, test_code)
    else:
        verdict: str = execution.termination
        if verdict == "exited":
            verdict = f"exit code {execution.exit_code}"
        if execution.verdict == "compile_error":
            verdict = "a compile error"  # the run fields then hold the compiler's output
        out = execution.stderr[-1500:] or execution.stdout[-800:]
        output = f"Its output ended with:\n{_block(out.strip(), limit=1500, tail=True)}" if out.strip() else (
            "It printed nothing.")
        feedback = REPAIR.format(how=how_run(lang), verdict=verdict, output=output)
    return [*previous, {"role": "assistant", "content": answer}, {"role": "user", "content": feedback}]


def _failed_check(lang: Language, failure: Failure, test_code: str | None) -> str:
    check, got = failure.check, failure.result
    ending = got.verdict if got.termination != "exited" else f"{got.verdict}, exit code {got.exit_code}"
    lines = []
    if check.kind == "test_code":
        lines.append(f"The program did not pass its test program, {got.name} ({ending}). The test program:")
        lines.append(_block(test_code or "", lang.fences[0], limit=2000))
    else:
        name = f' "{check.case.name}"' if check.case is not None and check.case.name else ""
        what = f"test case {check.number} of {failure.of}{name}" if check.kind == "case" else "its own run"
        lines.append(f"The program did not pass {what}: {ending}.")
        case = check.case
        if case is not None:
            if case.stdin:
                lines.append(f"Its input (stdin) was:\n{_block(case.stdin)}")
            if case.args:
                lines.append("Its command-line arguments were: " + " ".join(case.args))
            if case.expected_stdout is not None:
                lines.append(f"It should have printed:\n{_block(case.expected_stdout)}")
            if case.expected_exit_code:
                lines.append(f"It should have exited with code {case.expected_exit_code}.")
    lines.append(f"It printed:\n{_block(got.stdout)}" if got.stdout.strip() else "It printed nothing.")
    if got.stderr.strip():
        lines.append(f"Its error output ended with:\n{_block(got.stderr, tail=True)}")
    lines.append("Reply with the complete corrected program in the same format.")
    return "\n".join(lines)


def _block(text: str, fence: str = "", *, limit: int = 1000, tail: bool = False) -> str:
    """``text`` in a fenced block, cut to ``limit`` characters (its end when ``tail``)."""
    if len(text) > limit:
        text = ("…" + text[-limit:]) if tail else (text[:limit] + "…")
    return f"```{fence}\n{text.rstrip()}\n```"


def extract_files(answer: str, lang: Language) -> list[ExtractedFile]:
    """Files named in a model answer; the entry point is always among them when any code is."""
    files: dict[str, str] = {}
    unnamed: list[str] = []
    for m in _FENCE.finditer(answer):
        info = m.group("info").strip()
        body = _dedent(m.group("body"), m.group("indent"))
        if not body.strip():
            continue
        words = info.split()
        tag = words[0].lower() if words else ""
        name = None
        for word in words:
            found = _NAME.fullmatch(word.strip("`*:'\"").removeprefix("title=").strip("'\""))
            if found:
                name = found.group("name")
                break
        if name is None:
            name = _name_before(answer, m.start())
        lines = body.splitlines()
        if name is None and lines:
            mark = _FILE_MARK.match(lines[0])
            if mark:
                name = mark.group("name")
                body = "\n".join(lines[1:]) + "\n"
        if name is None:
            if tag and tag not in lang.fences and tag not in ("", "text", "code"):
                continue  # a block in another language (say, sample output): not ours
            unnamed.append(body)
            continue
        files[name] = body
    if unnamed:
        # The first unnamed block of our language is the entry point; later ones are
        # usually examples or output, so they are dropped rather than guessed at.
        files.setdefault(lang.entrypoint, unnamed[0])
    if not files:
        bare = _unpaired_fence(answer, lang).strip()
        if bare and _looks_like_code(bare, lang):
            files[lang.entrypoint] = bare + "\n"
    if files and lang.entrypoint not in files:
        # Run the first file of the language when the model named it otherwise.
        for name in files:
            if name.endswith(lang.extensions):
                files = {lang.entrypoint if n == name else n: c for n, c in files.items()}
                break
    return [ExtractedFile(path=p, content=c) for p, c in files.items()]


def _dedent(body: str, indent: str) -> str:
    if not indent:
        return body
    return "".join(line[len(indent):] if line.startswith(indent) else line for line in body.splitlines(True))


def _name_before(answer: str, start: int) -> str | None:
    before = answer[:start].rstrip("\n").rsplit("\n", 1)[-1].strip()
    if not before or len(before) > 80:
        return None
    m = _NAME.search(before.strip("`*#: "))
    if m and before.strip("`*#: ").endswith(m.group("name")):
        return m.group("name")
    return None


_FENCE_LINE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*)$", re.MULTILINE)


def _unpaired_fence(answer: str, lang: Language) -> str:
    """The code of an answer whose fence was never paired. A generation cut at
    ``max_tokens`` opens its block and never closes it (the code is what follows the
    fence); a small model may start with the code and close a block it never opened
    (the code is what precedes the fence, the prose after it is not code). The side that
    looks like code wins; an opening fence (one naming a language or a file) is trusted
    first."""
    m = _FENCE_LINE.search(answer)
    if m is None:
        return answer
    before, after = answer[: m.start()], answer[m.end():]
    sides = (after, before) if m.group(2).strip() or not before.strip() else (before, after)
    for side in sides:
        if side.strip() and _looks_like_code(side, lang):
            return side
    return answer


def _looks_like_code(text: str, lang: Language) -> bool:
    return bool(lang.code_hint and re.search(lang.code_hint, text, re.M))
