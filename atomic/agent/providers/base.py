"""What every provider is: a streaming text generator with usage accounting.

A provider turns a :class:`ProviderRequest` into an async stream of :class:`TextDelta`,
ending with exactly one :class:`Finish` that carries the usage. Providers translate their
vendor's errors into :mod:`atomic.errors` provider errors at their own boundary
(``ProviderRateLimited``, ``ProviderServerError``, ``ProviderTimeout``,
``ProviderRequestError``, ``ProviderUnavailable``), so the router can decide on retries
and fallbacks without knowing any vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from collections.abc import AsyncIterator


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ProviderRequest:
    messages: tuple[Message, ...]
    model: str | None = None  # None: the provider's configured default
    max_tokens: int = 512
    temperature: float = 0.2
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # True when counted by us rather than reported by the provider

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finish:
    usage: Usage
    model: str
    finish_reason: str = "stop"  # "stop" | "length" | "cancelled" | vendor's own word
    extra: dict[str, object] = field(default_factory=dict)


Event = TextDelta | Finish


@runtime_checkable
class Provider(Protocol):
    """A model vendor. ``name`` is the routing key (``"openai"``, ``"local"`` ...)."""

    name: str

    def stream(self, request: ProviderRequest) -> AsyncIterator[Event]:
        """Yield text deltas as produced, then one Finish. Cancellation stops generation."""
        ...

    async def aclose(self) -> None:
        """Release clients, threads and models."""
        ...

    def describe(self) -> dict[str, object]:
        """Public facts for /api/status: name, default model, configured. Never a secret."""
        ...
