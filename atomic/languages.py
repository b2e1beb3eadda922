"""The languages Atomic runs: the one table every other part reads.

For each language: how to ask a model for a program in it (display name, code-fence
names, entry point), how its sandbox image is made (Debian bookworm packages on top of
the base image, or the base image itself) and how a program in it is compiled and run.

Commands are argv templates. ``{entry}`` is the entry point's path, ``{main}`` the entry
point as a Java class name (``Main.java`` -> ``Main``), ``{sources}`` expands to every
source file of the language (several argv items). Environment values may name
``{tmp}``, the private temporary directory of the process (on the sandbox's tmpfs): the
compilers' writable caches live there, so the image stays read-only.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Language:
    name: str
    display: str
    version: str  # Debian bookworm's version; the built image reports its exact one
    compiled: bool
    entrypoint: str  # default file the program starts from
    extensions: tuple[str, ...]  # source files; the first is the entry point's
    fences: tuple[str, ...]  # code-fence info strings that mean this language
    packages: tuple[str, ...]  # Debian packages its image adds (for the base image's: what it has)
    image: str | None  # suffix of its own image (``atomic-sandbox-<image>``); None: the base image
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    version_command: str = ""  # shell: prints the version inside the image (recorded at build)
    code_hint: str = ""  # a regex that says an unfenced answer is code in this language
    # A job's test program (``test_code``): the file it is saved as beside the program, run
    # the language's way after the program (compiled with it, for Java). None: not offered.
    test_entrypoint: str | None = None
    test_hint: str = ""  # what the model is told about the test program

    def default_entry(self, paths: Iterable[str]) -> str:
        """The entry point among ``paths``: the language's own name when there, else its
        first source file, else the first file."""
        paths = list(paths)
        if self.entrypoint in paths:
            return self.entrypoint
        own = [p for p in paths if p.endswith(self.extensions)]
        return (own or paths or [self.entrypoint])[0]

    def sources(self, paths: Iterable[str], entry: str | None = None) -> list[str]:
        """The files the compiler is given: the entry point first, then the others sorted.

        Go takes the top directory's ``.go`` files (one package, no tests); Rust only the
        crate root (``rustc`` finds its modules itself); C, C++ and Java every source file.
        """
        entry = entry or self.entrypoint
        if self.name == "rust":
            return [entry]
        found = sorted(p for p in paths if p.endswith(self.extensions[:1] if self.name == "go" else self.extensions))
        if self.name == "go":
            found = [p for p in found if "/" not in p and not p.endswith("_test.go")]
        return [entry, *(p for p in found if p != entry)] if entry in found else found

    def compile_command(self, paths: Iterable[str], entry: str | None = None) -> list[str] | None:
        if not self.compiled:
            return None
        return self._expand(self.compile, entry or self.entrypoint, self.sources(paths, entry))

    def command(self, entry: str | None = None) -> list[str]:
        """How the program runs (after its compile, for a compiled language)."""
        return self._expand(self.run, entry or self.entrypoint, [])

    def environment(self, tmp: str) -> dict[str, str]:
        return {k: v.replace("{tmp}", tmp) for k, v in self.env.items()}

    @staticmethod
    def _expand(template: tuple[str, ...], entry: str, sources: list[str]) -> list[str]:
        main = posixpath.splitext(entry)[0].replace("/", ".")
        out: list[str] = []
        for part in template:
            if part == "{sources}":
                out += sources
            else:
                out.append(part.replace("{entry}", entry).replace("{main}", main))
        return out


_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")

LANGUAGES: Mapping[str, Language] = MappingProxyType({
    lang.name: lang
    for lang in (
        Language(
            name="python", display="Python 3", version="3.11", compiled=False,
            entrypoint="main.py", extensions=(".py",), fences=("python", "python3", "py"),
            packages=("python3",), image=None,
            run=("python3", "{entry}"),
            version_command="python3 -c 'import platform; print(platform.python_version())'",
            code_hint=r"^\s*(def |import |from |print\(|for |while |class |if __name__)",
            test_entrypoint="test_main.py",
            test_hint=("A test program, test_main.py, will `import main` and call its functions, so keep the "
                       "program's own work under `if __name__ == \"__main__\":`."),
        ),
        Language(
            name="shell", display="POSIX shell", version="0.5.12", compiled=False,
            entrypoint="main.sh", extensions=(".sh",), fences=("sh", "shell", "bash"),
            packages=("dash",), image=None,
            run=("sh", "{entry}"),
            version_command="dpkg-query -W -f='${Version}' dash | cut -d- -f1",
            code_hint=r"^\s*(echo |printf |for |while |if |#!)",
            test_entrypoint="test_main.sh",
            test_hint="A test program, test_main.sh, runs after the program in the same directory.",
        ),
        Language(
            name="c", display="C (GCC)", version="12.2.0", compiled=True,
            entrypoint="main.c", extensions=(".c",), fences=("c",),
            packages=("gcc", "libc6-dev"), image="c",
            compile=("gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "{sources}", "-lm"),
            run=("./main",),
            version_command="gcc -dumpfullversion",
            code_hint=r"^\s*(#include|int main)",
        ),
        Language(
            name="cpp", display="C++ (G++)", version="12.2.0", compiled=True,
            entrypoint="main.cpp", extensions=(".cpp", ".cc", ".cxx"), fences=("cpp", "c++", "cxx", "cc"),
            packages=("g++",), image="cpp",
            compile=("g++", "-O2", "-std=gnu++17", "-pipe", "-o", "main", "{sources}", "-lm"),
            run=("./main",),
            version_command="g++ -dumpfullversion",
            code_hint=r"^\s*(#include|int main|using namespace)",
        ),
        Language(
            name="javascript", display="JavaScript (Node.js)", version="18.20", compiled=False,
            entrypoint="main.js", extensions=(".js", ".mjs", ".cjs"), fences=("javascript", "js", "node", "nodejs"),
            packages=("nodejs",), image="javascript",
            run=("node", "{entry}"),
            version_command="node --version | tr -d v",
            code_hint=r"^\s*(console\.log|function |const |let |var |require\()",
            test_entrypoint="test_main.js",
            test_hint=("A test program, test_main.js, will `require('./main.js')` and call what it exports, so "
                       "export the functions with `module.exports` and keep the program's own work under "
                       "`if (require.main === module)`."),
        ),
        Language(
            name="go", display="Go", version="1.19", compiled=True,
            entrypoint="main.go", extensions=(".go",), fences=("go", "golang"),
            packages=("golang-go",), image="go",
            # No module fetching: GOPROXY=off; a go.mod may name only the standard library.
            compile=("go", "build", "-o", "main", "{sources}"),
            run=("./main",),
            env={"GOCACHE": "{tmp}/go-build", "GOPATH": "{tmp}/go", "GOPROXY": "off", "GOFLAGS": "-mod=mod",
                 "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off"},
            version_command="HOME=/tmp GOCACHE=off go env GOVERSION | sed s/^go//",
            code_hint=r"^\s*(package main|func main)",
        ),
        Language(
            name="rust", display="Rust", version="1.63.0", compiled=True,
            entrypoint="main.rs", extensions=(".rs",), fences=("rust", "rs"),
            packages=("rustc",), image="rust",
            compile=("rustc", "--edition=2021", "-O", "-o", "main", "{entry}"),
            run=("./main",),
            version_command="rustc --version | cut -d' ' -f2",
            code_hint=r"^\s*(fn main|use std)",
        ),
        Language(
            name="java", display="Java", version="17", compiled=True,
            entrypoint="Main.java", extensions=(".java",), fences=("java",),
            packages=("default-jdk-headless",), image="java",
            compile=("javac", *(f"-J{o}" for o in _JVM), "-encoding", "UTF-8", "-d", ".", "{sources}"),
            run=("java", *_JVM, "-cp", ".", "{main}"),
            version_command="javac -J-XX:-UsePerfData -version 2>&1 | cut -d' ' -f2",
            code_hint=r"^\s*(public class|class \w+|import java)",
            test_entrypoint="TestMain.java",
            test_hint=("A test class, TestMain (TestMain.java), is compiled with the program and calls the "
                       "static methods of class Main."),
        ),
    )
})

BASE_LANGUAGES = tuple(name for name, lang in LANGUAGES.items() if lang.image is None)


def get(name: str) -> Language:
    """The language called ``name`` (KeyError for an unknown one)."""
    return LANGUAGES[name]


def image_name(base_image: str, lang: Language) -> str:
    """The image a language runs in: the base image, or ``<base repo>-<suffix>:<base tag>``.

    ``atomic-sandbox:latest`` -> ``atomic-sandbox-go:latest``; a registry port in the
    name is kept (``host:5000/atomic-sandbox:1`` -> ``host:5000/atomic-sandbox-go:1``).
    """
    if lang.image is None:
        return base_image
    repo, tag = base_image, ""
    slash, colon = base_image.rfind("/"), base_image.rfind(":")
    if colon > slash:
        repo, tag = base_image[:colon], base_image[colon:]
    return f"{repo}-{lang.image}{tag}"


def supported(available: Iterable[str] | None = None) -> list[str]:
    """Languages Atomic can prompt for and run, in table order: the ``available`` ones.

    An empty or missing list means nothing is known (the sandbox is unavailable): all.
    """
    names = set(available or ())
    return [name for name in LANGUAGES if not names or name in names]
