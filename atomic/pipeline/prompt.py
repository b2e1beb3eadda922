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

from .languages import Language

if TYPE_CHECKING:
    from ..contract import ExecutionResult

SYSTEM = (
    "You are a careful {display} programmer. Write a complete, runnable program for the "
    "user's request. Reply with the code in one fenced code block: ```{fence} {entry} on "
    "the first line, then the code, then ```. If more files are needed, give each its own "
    "block with its file name after the language. The program is run as `{command}` with "
    "no network access and no input, so it must not ask for input. Keep explanations short."
)

REPAIR = (
    "The program did not work. It was run as `{command}` and ended with {verdict}.\n"
    "{output}\n"
    "Reply with the complete corrected program in the same format."
)

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


def messages(prompt: str, lang: Language) -> list[dict[str, str]]:
    """The chat messages that ask the model for a program."""
    system = SYSTEM.format(
        display=lang.display,
        fence=lang.fences[0],
        entry=lang.entrypoint,
        command=" ".join(lang.command()),
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def repair_messages(
    previous: list[dict[str, str]], answer: str, lang: Language, execution: ExecutionResult
) -> list[dict[str, str]]:
    """Send a failing program back with what went wrong."""
    verdict: str = execution.termination
    if verdict == "exited":
        verdict = f"exit code {execution.exit_code}"
    out = execution.stderr[-1500:] or execution.stdout[-800:]
    output = f"Its output ended with:\n```\n{out.strip()}\n```" if out.strip() else "It printed nothing."
    feedback = REPAIR.format(command=" ".join(lang.command()), verdict=verdict, output=output)
    return [*previous, {"role": "assistant", "content": answer}, {"role": "user", "content": feedback}]


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
        bare = answer.strip()
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


def _looks_like_code(text: str, lang: Language) -> bool:
    if lang.name == "python":
        return bool(re.search(r"^\s*(def |import |from |print\(|for |while |class |if __name__)", text, re.M))
    return bool(re.search(r"^\s*(echo |printf |for |while |if |#!)", text, re.M))
