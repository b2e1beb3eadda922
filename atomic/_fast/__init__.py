"""The one place that chooses between the Cython twins and their pure-Python references.

Every hot path has a pure-Python reference module (the truth, and what tests read) and a
Cython twin in this package with the same names. ``ATOMIC_NO_EXTENSIONS=1`` forces the
references; a missing or broken build falls back to them too. ``USING_EXTENSIONS`` tells
which were chosen, per twin.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

NO_EXTENSIONS = os.environ.get("ATOMIC_NO_EXTENSIONS", "") == "1"

# name -> (Cython twin module, pure-Python reference module)
TWINS: dict[str, tuple[str, str]] = {
    "codec": ("atomic._fast._codec", "atomic.ipc.codec"),
    "queue_core": ("atomic._fast._queue_core", "atomic.queue_core"),
}

USING_EXTENSIONS: dict[str, bool] = {}


def load(name: str, *, pure: bool | None = None) -> Any:
    """The module for twin ``name``: the Cython one unless disabled or not built."""
    fast_mod, pure_mod = TWINS[name]
    if pure is None:
        pure = NO_EXTENSIONS
    if not pure:
        try:
            mod = importlib.import_module(fast_mod)
        except ImportError:
            pass
        else:
            USING_EXTENSIONS[name] = True
            return mod
    USING_EXTENSIONS[name] = False
    return importlib.import_module(pure_mod)


def twins(name: str) -> list[Any]:
    """Both twins that are importable (pure first): for tests that run against each."""
    fast_mod, pure_mod = TWINS[name]
    out = [importlib.import_module(pure_mod)]
    try:
        out.append(importlib.import_module(fast_mod))
    except ImportError:
        pass
    return out
