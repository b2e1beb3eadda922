"""Anthropic: recorded Messages SSE streams through the real SDK (which speaks httpx2)."""

from __future__ import annotations

import logging

import httpx2
import pytest
import trio
from provider_wire import REQUEST, Replay, collect, error_text, hanging_stream, leaked, log_text, wire

from atomic import errors
from atomic.agent.providers import anthropic
from atomic.agent.providers.base import TextDelta, Usage
from atomic.agent.tokens import estimate_tokens

KEY = "sk-ant-api03-TESTKEY-abcdefghijklmnopSECRET"
ENV = {"ANTHROPIC_API_KEY": KEY, "ATOMIC_ANTHROPIC_MODEL": "claude-3-5-haiku-20241022"}


def make(tmp_settings, replay, env=ENV):
    return anthropic.create(tmp_settings, env, http_client=replay.client())


def error_body(kind: str, message: str) -> bytes:
    return b'{"type":"error","error":{"type":"%s","message":"%s"}}' % (kind.encode(), message.encode())


async def test_stream_text_usage_and_request_shape(tmp_settings):
    replay = Replay(httpx2, wire("anthropic_messages_stream.sse"))
    provider = make(tmp_settings, replay)

    text, finish, deltas = await collect(provider)

    assert text == "Hello!"
    assert deltas == [TextDelta("Hello"), TextDelta("!")]
    assert finish.usage == Usage(prompt_tokens=25, completion_tokens=15, estimated=False)
    assert finish.model == "claude-3-5-haiku-20241022"
    assert finish.finish_reason == "stop"
    assert finish.extra == {"vendor_finish_reason": "end_turn"}
    request = replay.request
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["anthropic-version"]
    # The SDK chooses the auth header (x-api-key, or Authorization: Bearer in SDK 2.x).
    assert request.headers.get("x-api-key") == KEY or request.headers.get("authorization") == f"Bearer {KEY}"
    assert replay.json() == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 64,
        "system": "You write Python.",
        "messages": [{"role": "user", "content": "Print hello."}],
        "stop_sequences": ["```\n"],
        "stream": True,
    }
    await provider.aclose()


async def test_base_url_from_env(tmp_settings):
    replay = Replay(httpx2, wire("anthropic_messages_stream.sse"))
    provider = make(
        tmp_settings, replay, {**ENV, "ANTHROPIC_BASE_URL": "https://proxy.example.test/anthropic"}
    )
    await collect(provider)
    assert str(replay.request.url) == "https://proxy.example.test/anthropic/v1/messages"


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (429, "rate_limit_error", errors.ProviderRateLimited),
        (500, "api_error", errors.ProviderServerError),
        (529, "overloaded_error", errors.ProviderServerError),
        (400, "invalid_request_error", errors.ProviderRequestError),
        (404, "not_found_error", errors.ProviderRequestError),
    ],
)
async def test_http_errors(tmp_settings, status, kind, expected):
    replay = Replay(
        httpx2,
        error_body(kind, "something went wrong"),
        status=status,
        headers={"content-type": "application/json", "retry-after": "12", "request-id": "req_1"},
    )
    provider = make(tmp_settings, replay)
    with pytest.raises(expected) as info:
        await collect(provider)
    assert info.value.details["vendor_error"] == kind
    assert info.value.details["status"] == status
    assert len(replay.requests) == 1
    if status == 429:
        assert info.value.details["retry_after"] == 12.0


async def test_error_event_mid_stream(tmp_settings):
    provider = make(tmp_settings, Replay(httpx2, wire("anthropic_stream_error.sse")))
    seen = []
    with pytest.raises(errors.ProviderServerError) as info:
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert seen == [TextDelta("Hel")]
    assert info.value.details["vendor_error"] == "overloaded_error"
    assert info.value.retryable


async def test_stream_cut_short_estimates_completion(tmp_settings):
    data = wire("anthropic_messages_stream.sse")
    cut = data[: data.index(b"event: content_block_stop")]
    provider = make(tmp_settings, Replay(httpx2, cut))
    text, finish, _ = await collect(provider)
    assert text == "Hello!"
    assert finish.usage == Usage(25, estimate_tokens("Hello!", "claude-3-5-haiku-20241022"), estimated=True)
    assert finish.finish_reason == "incomplete"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx2.ConnectError("refused"), errors.ProviderUnavailable),
        (httpx2.ReadTimeout("slow"), errors.ProviderTimeout),
    ],
)
async def test_transport_errors(tmp_settings, exc, expected):
    provider = make(tmp_settings, Replay(httpx2, raises=exc))
    with pytest.raises(expected):
        await collect(provider)


async def test_not_configured(tmp_settings):
    provider = anthropic.create(tmp_settings, {})
    assert provider.describe()["configured"] is False
    with pytest.raises(errors.ProviderUnavailable, match="ANTHROPIC_API_KEY"):
        await collect(provider)


async def test_cancel_closes_response(tmp_settings, autojump_clock):
    data = wire("anthropic_messages_stream.sse")
    first = data[
        : data.index(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"'
        )
    ]
    body = hanging_stream(httpx2, first)
    provider = make(tmp_settings, Replay(httpx2, stream=body))
    seen = []
    with trio.move_on_after(20):
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert trio.current_time() == 20
    assert seen == [TextDelta("Hello")]
    assert body.closed


async def test_key_never_leaks(tmp_settings, caplog):
    caplog.set_level(logging.DEBUG)
    replay = Replay(
        httpx2,
        error_body("authentication_error", f"invalid x-api-key {KEY}"),
        status=401,
        headers={"content-type": "application/json"},
    )
    provider = make(tmp_settings, replay)
    with pytest.raises(errors.ProviderRequestError) as info:
        await collect(provider)
    assert "invalid x-api-key ***" in info.value.message
    assert not leaked(KEY, error_text(info.value), repr(provider), str(provider.describe()), log_text(caplog))
