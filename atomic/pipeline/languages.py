"""Target languages: a re-export of :mod:`atomic.languages`, the one table (kept for imports
that still name this module)."""

from __future__ import annotations

from ..languages import LANGUAGES, Language, supported

__all__ = ["LANGUAGES", "Language", "supported"]
