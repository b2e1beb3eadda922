"""Azure OpenAI: the Chat Completions wire format at a deployment URL, via ``AsyncAzureOpenAI``.

Requests go to ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``
with the key in an ``api-key`` header. Configuration comes from the environment mapping
only: ``AZURE_OPENAI_API_KEY``, ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_VERSION`` and
``AZURE_OPENAI_DEPLOYMENT`` (which is also the model name reported by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai

from .openai import ChatCompletionsProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(ChatCompletionsProvider):
    """One Azure OpenAI deployment."""

    name = "azure"

    def __init__(
        self,
        *,
        api_key: str | None,
        endpoint: str | None,
        deployment: str | None,
        api_version: str | None = None,
        settings: Any = None,
        http_client: Any = None,
        cleanup_timeout: float | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            # On Azure the deployment chooses the model; the body's "model" is informational.
            model=deployment,
            settings=settings,
            http_client=http_client,
            cleanup_timeout=cleanup_timeout,
        )
        self._endpoint = endpoint
        self._deployment = deployment
        self._api_version = api_version or DEFAULT_API_VERSION
        self._fallback_model = deployment or "unset"

    def _url(self) -> str | None:
        if not self._endpoint:
            return None
        return f"{self._endpoint.rstrip('/')}/openai/deployments/{self._deployment or ''}"

    def _missing(self) -> list[str]:
        wanted = {
            "AZURE_OPENAI_API_KEY": self._api_key,
            "AZURE_OPENAI_ENDPOINT": self._endpoint,
            "AZURE_OPENAI_DEPLOYMENT": self._deployment,
        }
        return [name for name, value in wanted.items() if not value]

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "deployment": self._deployment, "api_version": self._api_version}

    def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncAzureOpenAI(
            api_key=self._api_key,
            azure_endpoint=self._endpoint or "",  # _missing() has checked it
            azure_deployment=self._deployment,
            api_version=self._api_version,
            max_retries=0,
            timeout=None,
            http_client=self._http_client,
        )


def create(settings: Any, env: Mapping[str, str], *, http_client: Any = None) -> AzureOpenAIProvider:
    """The Azure OpenAI provider as the environment configures it."""
    return AzureOpenAIProvider(
        api_key=env.get("AZURE_OPENAI_API_KEY") or None,
        endpoint=env.get("AZURE_OPENAI_ENDPOINT") or None,
        deployment=env.get("AZURE_OPENAI_DEPLOYMENT") or None,
        api_version=env.get("AZURE_OPENAI_API_VERSION") or None,
        settings=settings,
        http_client=http_client,
    )
