"""Builds the Cython twins in atomic/_fast/.

Each extension is an optional speed-up of a pure-Python reference module; a machine
without a C compiler still installs Atomic, and ``ATOMIC_NO_EXTENSIONS=1`` forces the
Python twins at run time (``atomic/_fast/__init__.py`` chooses).
"""

import os
from pathlib import Path

from setuptools import setup

ext_modules = []
if os.environ.get("ATOMIC_NO_EXTENSIONS") != "1":
    try:
        from Cython.Build import cythonize
    except ImportError:  # pragma: no cover - build without Cython
        cythonize = None
    if cythonize is not None:
        sources = sorted(str(p) for p in Path("atomic/_fast").glob("*.pyx"))
        if sources:
            ext_modules = cythonize(
                sources,
                language_level=3,
                compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
            )

setup(ext_modules=ext_modules)
