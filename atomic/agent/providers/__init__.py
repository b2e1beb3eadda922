"""The provider registry: routing name -> module, imported lazily.

Each module exposes ``create(settings, env) -> Provider``. :func:`build_providers`
builds every registered provider it can; one whose module is missing, whose SDK does not
import, or that is not configured is skipped with a logged warning, so one vendor cannot
keep the agent from starting.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping

from ...config import Settings
from ...errors import AtomicError
from .base import Provider

log = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "local": "atomic.agent.providers.local",
    "replay": "atomic.agent.providers.replay",
    "openai": "atomic.agent.providers.openai",
    "azure": "atomic.agent.providers.azure",
    "anthropic": "atomic.agent.providers.anthropic",
    "bedrock": "atomic.agent.providers.bedrock",
    "ollama": "atomic.agent.providers.ollama",
}


def create_provider(name: str, settings: Settings, env: Mapping[str, str] | None = None) -> Provider:
    """Build one provider by name. Raises ImportError or the provider's own AtomicError."""
    module = importlib.import_module(PROVIDERS[name])
    return module.create(settings, os.environ if env is None else env)


def build_providers_report(
    settings: Settings, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Provider], dict[str, str]]:
    """Every provider that could be built, and why each other one was skipped."""
    env = os.environ if env is None else env
    built: dict[str, Provider] = {}
    skipped: dict[str, str] = {}
    for name in PROVIDERS:
        try:
            built[name] = create_provider(name, settings, env)
        except ImportError as exc:
            skipped[name] = f"module or SDK not importable: {exc}"
        except AtomicError as exc:
            skipped[name] = exc.message
        except Exception as exc:  # noqa: BLE001 - a broken vendor module must not stop the agent
            skipped[name] = f"{type(exc).__name__}: {exc}"
        else:
            continue
        log.warning("provider %s skipped: %s", name, skipped[name])
    return built, skipped


def build_providers(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """Every registered provider that can be built here (see module docstring)."""
    return build_providers_report(settings, env)[0]
