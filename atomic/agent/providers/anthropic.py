"""Anthropic Messages API, streamed, through the official SDK's ``AsyncAnthropic``.

The SDK runs on httpx2 and anyio, so it runs under Trio as it is (note: it accepts only an
``httpx2.AsyncClient`` as ``http_client``). The stream's named SSE events carry what we
need: ``message_start`` the input tokens, ``content_block_delta``/``text_delta`` the text,
``message_delta`` the output tokens and stop reason, ``message_stop`` the end; an
``event: error`` mid-stream (e.g. ``overloaded_error``) is translated like an HTTP error.
System messages go in the request's ``system`` field. SDK 2.x targets an API version whose
Messages endpoint takes no ``temperature`` (nor ``seed``), so neither is sent.

Configuration comes from the environment mapping only: ``ANTHROPIC_API_KEY``,
``ANTHROPIC_BASE_URL``, ``ATOMIC_ANTHROPIC_MODEL``. Everything is passed to the SDK
explicitly, so it does not go looking for credentials of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anthropic

from ...errors import ProviderError, ProviderServerError, ProviderTimeout, ProviderUnavailable
from . import _http
from .base import Event, Finish, ProviderRequest, TextDelta
from .openai import public_url

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MODEL = "claude-3-5-haiku-latest"


class AnthropicProvider:
    """Claude models through the Messages API."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        model: str | None = None,
        settings: Any = None,
        http_client: Any = None,
        cleanup_timeout: float | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url or DEFAULT_BASE_URL
        self._env_model = model
        self._settings = settings
        self._http_client = http_client
        self._cleanup_timeout = _http.cleanup_bound(settings, cleanup_timeout)
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def configured(self) -> bool:
        return bool(self._api_key)

    def default_model(self) -> str:
        return _http.resolve_model(
            ProviderRequest(messages=()), self._env_model, self._settings, self.name, DEFAULT_MODEL
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.default_model(),
            "configured": self.configured,
            "base_url": public_url(self._base_url),
        }

    def __repr__(self) -> str:
        return f"<AnthropicProvider model={self.default_model()!r} configured={self.configured}>"

    def _get_client(self) -> anthropic.AsyncAnthropic:
        if not self._api_key:
            raise _http.not_configured(self.name, ["ANTHROPIC_API_KEY"])
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=0,
                timeout=None,
                http_client=self._http_client,
            )
        return self._client

    def _params(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        system, chat = _http.split_system(request.messages)
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in chat],
            # No temperature: the SDK's Messages API version (2.x) no longer takes one.
            "stream": True,
        }
        if system is not None:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Event]:
        client = self._get_client()
        model = _http.resolve_model(request, self._env_model, self._settings, self.name, DEFAULT_MODEL)
        counter = _http.UsageCounter(request, model)
        reason: str | None = None
        stopped = False
        log.debug("anthropic: streaming message, model %s", model)
        try:
            events = await client.messages.create(**self._params(request, model))
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        try:
            async for event in events:
                kind = event.type
                if kind == "message_start":
                    message = event.message
                    counter.model = message.model or counter.model
                    counter.prompt_tokens = _prompt_tokens(message.usage)
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta" and delta.text:
                        counter.add_text(delta.text)
                        yield TextDelta(delta.text)
                elif kind == "message_delta":
                    if event.delta.stop_reason:
                        reason = event.delta.stop_reason
                    usage = event.usage
                    if usage is not None:
                        if usage.output_tokens is not None:
                            counter.completion_tokens = usage.output_tokens
                        if getattr(usage, "input_tokens", None) is not None:
                            counter.prompt_tokens = _prompt_tokens(usage)
                elif kind == "message_stop":
                    stopped = True
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        finally:
            await _http.close_shielded(events.close, self._cleanup_timeout)
        yield Finish(
            usage=counter.usage(),
            model=counter.model,
            finish_reason=_http.finish_reason(reason) if stopped else "incomplete",
            extra={"vendor_finish_reason": reason} if reason else {},
        )

    def _translate(self, exc: Exception) -> ProviderError | None:
        """An Anthropic SDK or transport exception as an Atomic ProviderError; None: not ours."""
        secrets = (self._api_key,)
        if isinstance(exc, anthropic.APIStatusError):
            kind, message = _error_body(exc)
            return _http.error_for_status(
                self.name,
                exc.status_code,
                message,
                headers=exc.response.headers,
                kind=kind,
                secrets=secrets,
            )
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderTimeout("anthropic: request timed out", provider=self.name)
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__
            if cause is not None and _http.is_transport_error(cause):
                return _http.transport_error(self.name, cause, url=public_url(self._base_url))
            kind = type(cause).__name__ if cause is not None else "connection error"
            return ProviderUnavailable(
                f"anthropic: cannot reach {public_url(self._base_url)}: {kind}", provider=self.name
            )
        if isinstance(exc, anthropic.APIError):
            kind, message = _error_body(exc)
            return _http.error_for_status(self.name, 200, message, kind=kind, secrets=secrets)
        if _http.is_transport_error(exc):
            return _http.transport_error(self.name, exc, url=public_url(self._base_url))
        if isinstance(exc, (anthropic.AnthropicError, json.JSONDecodeError)):
            return ProviderServerError(
                _http.redact(f"anthropic: unusable response: {type(exc).__name__}: {exc}", secrets),
                provider=self.name,
            )
        return None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._http_client is None:
            await client.close()


def _prompt_tokens(usage: Any) -> int | None:
    """Input tokens, cache reads and writes included (Anthropic reports them apart)."""
    base = getattr(usage, "input_tokens", None)
    if base is None:
        return None
    extra = (getattr(usage, "cache_creation_input_tokens", None) or 0) + (
        getattr(usage, "cache_read_input_tokens", None) or 0
    )
    return int(base) + int(extra)


def _error_body(exc: anthropic.APIError) -> tuple[str | None, str]:
    """(error type, message) from Anthropic's ``{"type": "error", "error": {...}}`` body."""
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            kind = inner.get("type")
            message = inner.get("message")
            return (
                kind if isinstance(kind, str) else None,
                message if isinstance(message, str) else str(exc.message),
            )
    return None, str(getattr(exc, "message", "") or type(exc).__name__)


def create(settings: Any, env: Mapping[str, str], *, http_client: Any = None) -> AnthropicProvider:
    """The Anthropic provider as the environment configures it."""
    return AnthropicProvider(
        api_key=env.get("ANTHROPIC_API_KEY") or None,
        base_url=env.get("ANTHROPIC_BASE_URL") or None,
        model=env.get("ATOMIC_ANTHROPIC_MODEL") or None,
        settings=settings,
        http_client=http_client,
    )
