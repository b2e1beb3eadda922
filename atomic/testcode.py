"""A job's test program (``test_code``): whether it may be given for a language, and
whether it is in the job's language at all. Pure functions, no I/O.

Where the program is saved and how it runs is the language table's
(:attr:`~atomic.languages.Language.test_entrypoint`): it runs after the program, in the
same sandbox, the language's way, and passes when it exits 0.

Telling a test program's language apart:

* **Python** jobs: the code must compile (``compile()``, which parses and never runs it).
  Code that does not is refused, whatever language it is in.
* **Other** languages: a cheap heuristic that never refuses code valid in the job's
  language: refused only when the whole text is a valid Python module that *defines* a
  Python function (``def``), or, for JavaScript and Java, imports a module the Python way
  (``import x`` / ``from x import y``) or defines a Python class (``class X:``). None of
  these is valid JavaScript or Java, and a ``def name(...):`` line is a syntax error in
  a POSIX shell (``import``, ``from`` and ``class`` can be shell commands, so they do not
  count there). Code that is not valid Python is never refused for these languages;
  their compiler or interpreter judges it in the sandbox.
"""

from __future__ import annotations

import ast
import warnings

from .errors import ValidationError
from .languages import LANGUAGES

#: Python statements that are syntax errors in a language (besides Python).
_NOT_IN: dict[str, tuple[type[ast.stmt], ...]] = {
    "javascript": (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom),
    "java": (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom),
    "shell": (ast.FunctionDef, ast.AsyncFunctionDef),
}


def check_test_code(code: str, language: str, field: str = "test_code") -> None:
    """422 naming ``field`` when ``language`` runs no test program, or ``code`` is not
    in ``language`` (see the module's docstring for how that is told)."""
    lang = LANGUAGES[language]
    if lang.test_entrypoint is None:
        offered = ", ".join(name for name, other in LANGUAGES.items() if other.test_entrypoint)
        raise ValidationError(field, f"a test program is not supported for {language} yet (only for {offered}); "
                                     "give `tests` (stdin and expected output) instead")
    tree = _python(code)
    if language == "python":
        if isinstance(tree, str):
            raise ValidationError(field, f"is not valid Python: {tree}")
        problem = _compiles(code)
        if problem:
            raise ValidationError(field, f"is not valid Python: {problem}")
        return
    if isinstance(tree, ast.Module) and any(isinstance(node, _NOT_IN[language]) for node in tree.body):
        raise ValidationError(field, f"looks like Python, not {lang.display}: give the test program in the job's "
                                     "language")


def _compiles(code: str) -> str:
    """Why ``code`` does not compile (``return`` outside a function and the like), or ""."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(code, "test_main.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"it cannot be compiled ({type(exc).__name__})"
    return ""


def _python(code: str) -> ast.Module | str:
    """``code`` parsed as a Python module, or why it is not one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            return ast.parse(code, "test_main.py")
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes; nesting too deep for the parser
        return f"it cannot be parsed ({type(exc).__name__})"


__all__ = ["check_test_code"]
