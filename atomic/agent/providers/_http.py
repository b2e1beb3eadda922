"""Helpers the HTTP providers share: error translation, secrets, usage, finish reasons.

Every provider meets foreign exceptions (vendor SDK errors, ``httpx``/``httpx2`` transport
errors, botocore errors) at its own boundary and turns them into the
:class:`~atomic.errors.ProviderError` family here, so the router can decide on retries
without knowing any vendor. Messages are scrubbed of the provider's secrets before they
become part of an Atomic error, and translated errors are raised ``from None``: a vendor
exception holds the request, and the request holds the key.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import trio

from ...errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnavailable,
)
from .. import tokens
from .base import Finish, Message, ProviderRequest, TextDelta, Usage

try:  # the vendor SDKs speak httpx2; its errors reach us mid-stream, unwrapped.
    import httpx2
except ImportError:  # pragma: no cover - the SDKs are an optional extra
    httpx2 = None  # type: ignore[assignment]

__all__ = [
    "Finish",
    "TextDelta",
    "UsageCounter",
    "error_for_status",
    "finish_reason",
    "redact",
    "retry_after",
    "transport_error",
]

REDACTED = "***"
# Longest vendor text we copy into an error message.
_MAX_MESSAGE = 500


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def mask(secret: str | None) -> str | None:
    """What describe() may show of a secret: whether it is set, nothing of its value."""
    return REDACTED if secret else None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a response asks us to wait: ``retry-after-ms``, ``Retry-After`` (seconds or date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    provider: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    kind: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The Atomic error for an HTTP status (or a vendor's error ``kind`` carried in a 200 stream).

    429 is a rate limit (with the Retry-After hint), 5xx and Anthropic's 529 *overloaded* are
    server errors, 408/504 timeouts, other 4xx requests the provider refuses.
    """
    text = redact(f"{provider}: {message}"[:_MAX_MESSAGE], secrets)
    details: dict[str, Any] = {"provider": provider, "status": status}
    if kind:
        details["vendor_error"] = kind
    kind_l = (kind or "").lower()
    if status == 429 or "rate_limit" in kind_l or "throttl" in kind_l:
        return ProviderRateLimited(text, retry_after=retry_after(headers), **details)
    if status in (408, 504) or "timeout" in kind_l:
        return ProviderTimeout(text, **details)
    if status >= 500 or "overloaded" in kind_l or kind_l in ("api_error", "server_error"):
        return ProviderServerError(text, **details)
    if 400 <= status < 500 or "invalid_request" in kind_l:
        return ProviderRequestError(text, **details)
    # A 2xx/3xx with an error inside (a mid-stream error event of unknown kind).
    return ProviderServerError(text, **details)


def _transport_classes(name: str) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [getattr(httpx, name)]
    if httpx2 is not None:
        found.append(getattr(httpx2, name))
    return tuple(found)


_TIMEOUTS = _transport_classes("TimeoutException")
_CONNECT = _transport_classes("ConnectError") + _transport_classes("UnsupportedProtocol")
_TRANSPORT = _transport_classes("TransportError") + _transport_classes("StreamError")


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSPORT)


def transport_error(provider: str, exc: BaseException, *, url: str | None = None) -> ProviderError:
    """The Atomic error for an ``httpx``/``httpx2`` transport failure (never carries the request)."""
    where = f" ({url})" if url else ""
    kind = type(exc).__name__
    if isinstance(exc, _TIMEOUTS):
        return ProviderTimeout(f"{provider}: timed out{where}: {kind}", provider=provider)
    if isinstance(exc, _CONNECT):
        return ProviderUnavailable(f"{provider}: cannot connect{where}: {kind}", provider=provider)
    # Read/write errors and protocol violations: the connection broke under us.
    return ProviderServerError(f"{provider}: connection lost{where}: {kind}", provider=provider)


def not_configured(provider: str, missing: Iterable[str]) -> ProviderUnavailable:
    names = ", ".join(missing)
    return ProviderUnavailable(f"{provider} is not configured: set {names}", provider=provider)


def finish_reason(raw: str | None) -> str:
    """A vendor's stop reason in Atomic's words: ``stop``, ``length``, or the vendor's own."""
    if raw is None:
        return "stop"
    low = raw.lower()
    if low in ("stop", "end_turn", "stop_sequence", "eos", "complete"):
        return "stop"
    if low in ("length", "max_tokens", "model_length_exceeded"):
        return "length"
    return raw


def cleanup_bound(settings: Any, given: float | None) -> float:
    """Seconds a provider's shielded cleanup may take: ``given``, else the settings', else
    config's default (the one place that default lives)."""
    if given is not None:
        return given
    configured = getattr(settings, "cleanup_timeout_s", None)
    if configured is not None:
        return float(configured)
    from ...config import Settings

    return Settings.cleanup_timeout_s


def resolve_model(
    request: ProviderRequest, env_model: str | None, settings: Any, provider: str, fallback: str
) -> str:
    """The request's model, else ``ATOMIC_<PROVIDER>_MODEL``, else ``ATOMIC_MODEL`` when this
    provider is the default one, else the provider's built-in default."""
    if request.model:
        return request.model
    if env_model:
        return env_model
    if settings is not None and getattr(settings, "provider", None) == provider and settings.model:
        return str(settings.model)
    return fallback


def split_system(messages: Iterable[Message]) -> tuple[str | None, list[Message]]:
    """System prompts joined (for APIs that take them apart) and the rest of the chat."""
    system = [m.content for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    return ("\n\n".join(system) if system else None), rest


class UsageCounter:
    """Collects what a stream says about usage; estimates whatever the vendor left out."""

    def __init__(self, request: ProviderRequest, model: str) -> None:
        self._request = request
        self.model = model
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self._text: list[str] = []

    def add_text(self, text: str) -> None:
        self._text.append(text)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def usage(self) -> Usage:
        prompt = self.prompt_tokens
        completion = self.completion_tokens
        estimated = prompt is None or completion is None
        if prompt is None:
            prompt = tokens.estimate_prompt_tokens((m.content for m in self._request.messages), self.model)
        if completion is None:
            completion = tokens.estimate_tokens(self.text, self.model)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=estimated)


async def close_shielded(aclose: Any, timeout: float) -> None:
    """Close a stream even while being cancelled: shielded, and bounded by ``timeout``."""
    with trio.move_on_after(timeout, shield=True):
        await aclose()
