"""Target languages: how to ask for a program in each, and how to run it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    name: str
    display: str
    entrypoint: str  # default file the program starts from
    fences: tuple[str, ...]  # code-fence info strings that mean this language
    extensions: tuple[str, ...]
    run: tuple[str, ...]  # command, with {entry} standing for the entry point

    def command(self, entry: str | None = None) -> list[str]:
        entry = entry or self.entrypoint
        return [part.replace("{entry}", entry) for part in self.run]


LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python",
        display="Python 3",
        entrypoint="main.py",
        fences=("python", "python3", "py"),
        extensions=(".py",),
        run=("python3", "{entry}"),
    ),
    "shell": Language(
        name="shell",
        display="POSIX shell",
        entrypoint="main.sh",
        fences=("sh", "shell", "bash"),
        extensions=(".sh",),
        run=("sh", "{entry}"),
    ),
}


def supported(image_languages: list[str] | None = None) -> list[str]:
    """Languages Atomic can prompt for and the sandbox image can run."""
    if not image_languages:
        return sorted(LANGUAGES)
    return sorted(name for name in LANGUAGES if name in image_languages)
