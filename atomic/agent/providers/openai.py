"""OpenAI Chat Completions, streamed, through the official SDK's ``AsyncOpenAI``.

The SDK runs on httpx2 and anyio, so it runs under Trio as it is. We ask for
``stream_options={"include_usage": True}``, which makes the last chunk carry the usage; a
server that ignores it (some OpenAI-compatible ones) gets its usage estimated.

Configuration comes from the environment mapping only: ``OPENAI_API_KEY``,
``OPENAI_BASE_URL`` (e.g. a local ``llama_cpp.server``; then the key may be left unset) and
``ATOMIC_OPENAI_MODEL``. The SDK's own retries are off (the router retries) and so are its
timeouts (callers own timeouts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai

from ...errors import ProviderError, ProviderServerError, ProviderTimeout, ProviderUnavailable
from . import _http
from .base import Event, Finish, ProviderRequest, TextDelta

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
# What OpenAI-compatible local servers accept as "no key" (llama.cpp's own docs use it).
NO_KEY = "sk-no-key-required"


def public_url(url: str | None) -> str | None:
    """A URL without user info or query string: safe for describe() and error messages."""
    if not url:
        return None
    import httpx

    try:
        parsed = httpx.URL(url)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing
        return None
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


class ChatCompletionsProvider:
    """The Chat Completions wire format, shared by OpenAI and Azure OpenAI."""

    name = "openai"
    _fallback_model = DEFAULT_MODEL

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str | None = None,
        settings: Any = None,
        http_client: Any = None,
        cleanup_timeout: float | None = None,
    ) -> None:
        self._api_key = api_key
        self._env_model = model
        self._settings = settings
        self._http_client = http_client
        self._cleanup_timeout = _http.cleanup_bound(settings, cleanup_timeout)
        self._client: openai.AsyncOpenAI | None = None

    # --- configuration --------------------------------------------------------------

    def _missing(self) -> list[str]:
        """Environment variables that must be set before this provider can work."""
        raise NotImplementedError

    def _make_client(self) -> openai.AsyncOpenAI:
        raise NotImplementedError

    def _url(self) -> str | None:
        raise NotImplementedError

    @property
    def configured(self) -> bool:
        return not self._missing()

    def default_model(self) -> str:
        return _http.resolve_model(
            ProviderRequest(messages=()), self._env_model, self._settings, self.name, self._fallback_model
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.default_model(),
            "configured": self.configured,
            "base_url": public_url(self._url()),
        }

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self.name!r} model={self.default_model()!r} "
            f"configured={self.configured}>"
        )

    def _get_client(self) -> openai.AsyncOpenAI:
        missing = self._missing()
        if missing:
            raise _http.not_configured(self.name, missing)
        if self._client is None:
            self._client = self._make_client()
        return self._client

    # --- streaming ------------------------------------------------------------------

    def _params(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        return params

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Event]:
        client = self._get_client()
        model = _http.resolve_model(request, self._env_model, self._settings, self.name, self._fallback_model)
        counter = _http.UsageCounter(request, model)
        reason: str | None = None
        log.debug("%s: streaming chat completion, model %s", self.name, model)
        try:
            chunks = await client.chat.completions.create(**self._params(request, model))
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        try:
            async for chunk in chunks:
                if chunk.model:
                    counter.model = chunk.model
                if chunk.usage is not None:
                    counter.prompt_tokens = chunk.usage.prompt_tokens
                    counter.completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        counter.add_text(text)
                        yield TextDelta(text)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        finally:
            await _http.close_shielded(chunks.close, self._cleanup_timeout)
        usage = counter.usage()
        yield Finish(
            usage=usage,
            model=counter.model,
            finish_reason=_http.finish_reason(reason) if reason else "incomplete",
            extra={"vendor_finish_reason": reason} if reason else {},
        )

    async def complete(self, request: ProviderRequest) -> tuple[str, Finish]:
        """The same request unstreamed: the whole text, and a Finish with the server's usage."""
        client = self._get_client()
        model = _http.resolve_model(request, self._env_model, self._settings, self.name, self._fallback_model)
        params = self._params(request, model)
        del params["stream"], params["stream_options"]
        try:
            result = await client.chat.completions.create(**params)
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None
        choice = result.choices[0] if result.choices else None
        text = (choice.message.content if choice is not None else None) or ""
        counter = _http.UsageCounter(request, result.model or model)
        counter.add_text(text)
        if result.usage is not None:
            counter.prompt_tokens = result.usage.prompt_tokens
            counter.completion_tokens = result.usage.completion_tokens
        reason = choice.finish_reason if choice is not None else None
        return text, Finish(
            usage=counter.usage(), model=counter.model, finish_reason=_http.finish_reason(reason)
        )

    def _translate(self, exc: Exception) -> ProviderError | None:
        """An OpenAI SDK or transport exception as an Atomic ProviderError; None: not ours."""
        secrets = (self._api_key,)
        if isinstance(exc, openai.APIStatusError):
            kind = _error_kind(exc)
            return _http.error_for_status(
                self.name,
                exc.status_code,
                _vendor_message(exc),
                headers=exc.response.headers,
                kind=kind,
                secrets=secrets,
            )
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeout(f"{self.name}: request timed out", provider=self.name)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            if cause is not None and _http.is_transport_error(cause):
                return _http.transport_error(self.name, cause, url=public_url(self._url()))
            kind = type(cause).__name__ if cause is not None else "connection error"
            return ProviderUnavailable(
                f"{self.name}: cannot reach {public_url(self._url())}: {kind}", provider=self.name
            )
        if isinstance(exc, openai.APIError):
            # An error object inside a 200 stream.
            return _http.error_for_status(
                self.name, 200, _vendor_message(exc), kind=_error_kind(exc), secrets=secrets
            )
        if _http.is_transport_error(exc):
            return _http.transport_error(self.name, exc, url=public_url(self._url()))
        if isinstance(exc, (openai.OpenAIError, json.JSONDecodeError)):
            return ProviderServerError(
                _http.redact(f"{self.name}: unusable response: {type(exc).__name__}: {exc}", secrets),
                provider=self.name,
            )
        return None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        # An injected http_client belongs to whoever injected it.
        if client is not None and self._http_client is None:
            await client.close()


def _error_kind(exc: openai.APIError) -> str | None:
    for value in (getattr(exc, "type", None), getattr(exc, "code", None)):
        if isinstance(value, str) and value:
            return value
    return None


def _vendor_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(getattr(exc, "message", "") or type(exc).__name__)


class OpenAIProvider(ChatCompletionsProvider):
    """OpenAI, or any OpenAI-compatible server at ``OPENAI_BASE_URL``."""

    name = "openai"

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
        super().__init__(
            api_key=api_key,
            model=model,
            settings=settings,
            http_client=http_client,
            cleanup_timeout=cleanup_timeout,
        )
        self._base_url = base_url

    def _url(self) -> str:
        return self._base_url or DEFAULT_BASE_URL

    def _missing(self) -> list[str]:
        # A custom server (llama_cpp.server, vLLM ...) may need no key; OpenAI itself does.
        return [] if (self._api_key or self._base_url) else ["OPENAI_API_KEY"]

    def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=self._api_key or NO_KEY,
            base_url=self._url(),
            max_retries=0,
            timeout=None,
            http_client=self._http_client,
        )


def create(settings: Any, env: Mapping[str, str], *, http_client: Any = None) -> OpenAIProvider:
    """The OpenAI provider as the environment configures it."""
    return OpenAIProvider(
        api_key=env.get("OPENAI_API_KEY") or None,
        base_url=env.get("OPENAI_BASE_URL") or None,
        model=env.get("ATOMIC_OPENAI_MODEL") or None,
        settings=settings,
        http_client=http_client,
    )
