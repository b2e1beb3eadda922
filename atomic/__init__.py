"""Atomic: a prompt in, a tested, packaged program out."""

__version__ = "0.1.0"
