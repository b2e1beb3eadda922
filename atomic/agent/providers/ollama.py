"""Ollama's native chat API, streamed as NDJSON, over httpx directly.

``POST /api/chat`` with ``"stream": true`` answers one JSON object per line; each carries a
piece of ``message.content``, the last has ``"done": true`` with ``done_reason``,
``prompt_eval_count`` (prompt tokens) and ``eval_count`` (completion tokens). An error is
an HTTP status with ``{"error": "..."}``, or a line ``{"error": "..."}`` mid-stream.

Configuration comes from the environment mapping only: ``OLLAMA_HOST`` (default
``http://127.0.0.1:11434``; ``host``, ``host:port`` and ``0.0.0.0`` forms as Ollama reads
them) and ``ATOMIC_OLLAMA_MODEL``. Ollama needs no key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from ...errors import ProviderServerError
from . import _http
from .base import Event, Finish, ProviderRequest, TextDelta

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
DEFAULT_MODEL = "llama3.2"


def host_url(raw: str | None) -> str:
    """``OLLAMA_HOST`` as a base URL, the way the ollama CLI reads it."""
    raw = (raw or "").strip().rstrip("/")
    if not raw:
        return DEFAULT_HOST
    if "://" not in raw:
        raw = "http://" + raw
    url = httpx.URL(raw)
    host = url.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    port = url.port or (DEFAULT_PORT if url.scheme == "http" else None)
    return str(url.copy_with(host=host, port=port, username=None, password=None)).rstrip("/")


class OllamaProvider:
    """A model served by a local (or remote) Ollama."""

    name = "ollama"

    def __init__(
        self,
        *,
        host: str | None = None,
        model: str | None = None,
        settings: Any = None,
        http_client: httpx.AsyncClient | None = None,
        cleanup_timeout: float | None = None,
    ) -> None:
        self._base_url = host_url(host)
        self._env_model = model
        self._settings = settings
        self._own_client = http_client is None
        self._http_client = http_client
        self._cleanup_timeout = _http.cleanup_bound(settings, cleanup_timeout)

    def default_model(self) -> str:
        return _http.resolve_model(
            ProviderRequest(messages=()), self._env_model, self._settings, self.name, DEFAULT_MODEL
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.default_model(),
            "configured": True,
            "base_url": self._base_url,
        }

    def __repr__(self) -> str:
        return f"<OllamaProvider url={self._base_url!r} model={self.default_model()!r}>"

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            # No client-side timeouts: callers own them (trio.fail_after around the stream).
            self._http_client = httpx.AsyncClient(timeout=None)
        return self._http_client

    def _body(self, request: ProviderRequest, model: str) -> dict[str, Any]:
        options: dict[str, Any] = {"temperature": request.temperature, "num_predict": request.max_tokens}
        if request.seed is not None:
            options["seed"] = request.seed
        if request.stop:
            options["stop"] = list(request.stop)
        return {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "options": options,
        }

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Event]:
        client = self._client()
        model = _http.resolve_model(request, self._env_model, self._settings, self.name, DEFAULT_MODEL)
        counter = _http.UsageCounter(request, model)
        url = f"{self._base_url}/api/chat"
        reason: str | None = None
        done = False
        log.debug("ollama: streaming chat, model %s", model)
        try:
            response = await client.send(
                client.build_request("POST", url, json=self._body(request, model)), stream=True
            )
        except httpx.TransportError as exc:
            raise _http.transport_error(self.name, exc, url=self._base_url) from None
        try:
            if response.status_code >= 400:
                await response.aread()
                raise _http.error_for_status(
                    self.name, response.status_code, _error_text(response.text), headers=response.headers
                )
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    chunk = json.loads(line)
                except json.JSONDecodeError:
                    raise ProviderServerError(
                        "ollama: a stream line is not JSON", provider=self.name
                    ) from None
                if chunk.get("error"):
                    raise _http.error_for_status(self.name, 200, str(chunk["error"]))
                if chunk.get("model"):
                    counter.model = chunk["model"]
                text = (chunk.get("message") or {}).get("content") or ""
                if text:
                    counter.add_text(text)
                    yield TextDelta(text)
                if chunk.get("done"):
                    done = True
                    reason = chunk.get("done_reason") or "stop"
                    if isinstance(chunk.get("prompt_eval_count"), int):
                        counter.prompt_tokens = chunk["prompt_eval_count"]
                    if isinstance(chunk.get("eval_count"), int):
                        counter.completion_tokens = chunk["eval_count"]
                    break
        except httpx.TransportError as exc:
            raise _http.transport_error(self.name, exc, url=self._base_url) from None
        finally:
            await _http.close_shielded(response.aclose, self._cleanup_timeout)
        yield Finish(
            usage=counter.usage(),
            model=counter.model,
            finish_reason=_http.finish_reason(reason) if done else "incomplete",
            extra={"vendor_finish_reason": reason} if reason else {},
        )

    async def aclose(self) -> None:
        if self._own_client and self._http_client is not None:
            client, self._http_client = self._http_client, None
            await client.aclose()


def _error_text(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip() or "no error text"
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return body.strip()


def create(
    settings: Any, env: Mapping[str, str], *, http_client: httpx.AsyncClient | None = None
) -> OllamaProvider:
    """The Ollama provider as the environment configures it."""
    return OllamaProvider(
        host=env.get("OLLAMA_HOST") or None,
        model=env.get("ATOMIC_OLLAMA_MODEL") or None,
        settings=settings,
        http_client=http_client,
    )
