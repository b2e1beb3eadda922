"""OpenAI and Azure OpenAI: recorded Chat Completions streams through the real SDK code."""

from __future__ import annotations

import logging

import httpx
import httpx2
import pytest
import trio
from provider_wire import (
    REQUEST,
    Replay,
    collect,
    error_text,
    first_event,
    hanging_stream,
    leaked,
    log_text,
    wire,
)

from atomic import errors
from atomic.agent.providers import azure, openai
from atomic.agent.providers.base import Finish, TextDelta, Usage
from atomic.agent.tokens import estimate_prompt_tokens, estimate_tokens

KEY = "sk-proj-TESTKEY-0123456789abcdefSECRET"
AZURE_KEY = "a1b2c3d4e5f6AZUREKEY0987654321ff"
OPENAI_ENV = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "https://api.example.test/v1"}
AZURE_ENV = {
    "AZURE_OPENAI_API_KEY": AZURE_KEY,
    "AZURE_OPENAI_ENDPOINT": "https://myres.openai.azure.com/",
    "AZURE_OPENAI_API_VERSION": "2024-10-21",
    "AZURE_OPENAI_DEPLOYMENT": "gpt4o-prod",
}


def make_openai(tmp_settings, replay, env=OPENAI_ENV):
    return openai.create(tmp_settings, env, http_client=replay.client())


def make_azure(tmp_settings, replay, env=AZURE_ENV):
    return azure.create(tmp_settings, env, http_client=replay.client())


# --- OpenAI --------------------------------------------------------------------------


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_openai_stream_text_usage_and_request_shape(tmp_settings, lib):
    replay = Replay(lib, wire("openai_chat_stream.sse"))
    provider = make_openai(tmp_settings, replay)

    text, finish, deltas = await collect(provider)

    assert text == 'print("hello")'
    assert len(deltas) == 2
    assert finish.usage == Usage(prompt_tokens=19, completion_tokens=4, estimated=False)
    assert finish.model == "gpt-4o-mini-2024-07-18"
    assert finish.finish_reason == "stop"
    request = replay.request
    assert request.method == "POST"
    assert str(request.url) == "https://api.example.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = replay.json()
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": "Print hello."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.0,
        "seed": 7,
        "stop": ["```\n"],
    }
    await provider.aclose()


async def test_openai_model_from_env_and_request(tmp_settings):
    replay = Replay(httpx, wire("openai_chat_stream.sse"))
    provider = make_openai(tmp_settings, replay, {**OPENAI_ENV, "ATOMIC_OPENAI_MODEL": "gpt-4.1"})
    assert provider.describe()["model"] == "gpt-4.1"
    await collect(provider)
    assert replay.json()["model"] == "gpt-4.1"


async def test_openai_server_without_streamed_usage_is_estimated(tmp_settings):
    replay = Replay(httpx, wire("openai_chat_stream_no_usage.sse"))
    provider = make_openai(tmp_settings, replay, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})

    text, finish, _ = await collect(provider)

    assert text == "Hello there"
    assert finish.usage.estimated is True
    assert finish.usage.completion_tokens == estimate_tokens("Hello there", "local-model")
    assert finish.usage.prompt_tokens == estimate_prompt_tokens(
        [m.content for m in REQUEST.messages], "local-model"
    )
    assert finish.finish_reason == "length"
    # No key is needed for a custom server; a placeholder goes on the wire, not None.
    assert replay.request.headers["authorization"] == f"Bearer {openai.NO_KEY}"


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (
            429,
            (
                b'{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,'
                b'"code":"rate_limit_exceeded"}}'
            ),
            {"retry-after": "7"},
            errors.ProviderRateLimited,
        ),
        (
            500,
            b'{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}',
            {},
            errors.ProviderServerError,
        ),
        (
            529,
            b'{"error":{"message":"Overloaded","type":"overloaded_error"}}',
            {},
            errors.ProviderServerError,
        ),
        (
            400,
            (
                b'{"error":{"message":"max_tokens is too large","type":"invalid_request_error",'
                b'"param":"max_tokens","code":null}}'
            ),
            {},
            errors.ProviderRequestError,
        ),
        (504, b'{"error":{"message":"Gateway timeout"}}', {}, errors.ProviderTimeout),
    ],
    ids=["429", "500", "529", "400", "504"],
)
async def test_openai_http_errors(tmp_settings, status, body, headers, expected):
    replay = Replay(httpx, body, status=status, headers={"content-type": "application/json", **headers})
    provider = make_openai(tmp_settings, replay)
    with pytest.raises(expected) as info:
        await collect(provider)
    assert info.value.details["status"] == status
    assert info.value.details["provider"] == "openai"
    assert len(replay.requests) == 1, "the SDK must not retry: the router does"
    if status == 429:
        assert info.value.details["retry_after"] == 7.0
        assert info.value.retryable
    if status == 400:
        assert not info.value.retryable
        assert "max_tokens is too large" in info.value.message


async def test_openai_error_inside_stream(tmp_settings):
    replay = Replay(httpx, wire("openai_stream_error.sse"))
    provider = make_openai(tmp_settings, replay)
    seen = []
    with pytest.raises(errors.ProviderServerError) as info:
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert seen == [TextDelta("par")]
    assert info.value.details["vendor_error"] == "server_error"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("connection refused"), errors.ProviderUnavailable),
        (httpx.ReadTimeout("timed out"), errors.ProviderTimeout),
        (httpx2.ConnectError("connection refused"), errors.ProviderUnavailable),
    ],
    ids=["connect-httpx", "timeout-httpx", "connect-httpx2"],
)
async def test_openai_transport_errors(tmp_settings, exc, expected):
    lib = httpx2 if type(exc).__module__.startswith("httpx2") else httpx
    replay = Replay(lib, raises=exc)
    provider = make_openai(tmp_settings, replay)
    with pytest.raises(expected):
        await collect(provider)


async def test_openai_connection_lost_mid_stream(tmp_settings):
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield first_event(wire("openai_chat_stream.sse"))
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    provider = make_openai(tmp_settings, Replay(httpx, stream=Broken()))
    with pytest.raises(errors.ProviderServerError, match="connection lost"):
        await collect(provider)


async def test_openai_not_configured(tmp_settings):
    provider = openai.create(tmp_settings, {})
    assert provider.describe()["configured"] is False
    with pytest.raises(errors.ProviderUnavailable, match="OPENAI_API_KEY"):
        await collect(provider)


async def test_openai_cancel_closes_response(tmp_settings, autojump_clock):
    body = hanging_stream(httpx, first_event(wire("openai_chat_stream.sse")))
    provider = make_openai(tmp_settings, Replay(httpx, stream=body))
    seen = []
    with trio.move_on_after(30) as scope:
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert scope.cancelled_caught
    assert trio.current_time() == 30
    assert seen == [TextDelta("print")]
    assert body.closed


async def test_openai_complete_reports_server_usage(tmp_settings):
    body = (
        b'{"id":"chatcmpl-1","object":"chat.completion","created":1730000000,"model":"gpt-4o-mini",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"print(1)"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":19,"completion_tokens":4,"total_tokens":23}}'
    )
    replay = Replay(httpx, body, headers={"content-type": "application/json"})
    provider = make_openai(tmp_settings, replay)
    text, finish = await provider.complete(REQUEST)
    assert text == "print(1)"
    assert finish.usage == Usage(19, 4, estimated=False)
    assert "stream" not in replay.json()


async def test_openai_key_never_leaks(tmp_settings, caplog):
    caplog.set_level(logging.DEBUG)
    body = (
        b'{"error":{"message":"Incorrect API key provided: ' + KEY.encode() + b". You can find your API key "
        b'at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,'
        b'"code":"invalid_api_key"}}'
    )
    replay = Replay(httpx, body, status=401, headers={"content-type": "application/json"})
    provider = make_openai(tmp_settings, replay)
    with pytest.raises(errors.ProviderRequestError) as info:
        await collect(provider)
    assert "Incorrect API key provided" in info.value.message
    assert not leaked(KEY, error_text(info.value), repr(provider), str(provider.describe()), log_text(caplog))


# --- Azure OpenAI --------------------------------------------------------------------


async def test_azure_stream_text_usage_and_request_shape(tmp_settings):
    replay = Replay(httpx, wire("azure_chat_stream.sse"))
    provider = make_azure(tmp_settings, replay)

    text, finish, _ = await collect(provider)

    assert text == "Hi from Azure"
    assert finish.usage == Usage(prompt_tokens=12, completion_tokens=3, estimated=False)
    assert finish.model == "gpt-4o-2024-08-06"
    assert finish.finish_reason == "stop"
    request = replay.request
    assert request.url.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert request.url.host == "myres.openai.azure.com"
    assert request.url.params["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == AZURE_KEY
    assert "authorization" not in request.headers
    body = replay.json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "You write Python."}
    assert body["max_tokens"] == 64
    assert provider.describe() == {
        "name": "azure",
        "model": "gpt4o-prod",
        "configured": True,
        "base_url": "https://myres.openai.azure.com/openai/deployments/gpt4o-prod",
        "deployment": "gpt4o-prod",
        "api_version": "2024-10-21",
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, errors.ProviderRateLimited),
        (500, errors.ProviderServerError),
        (400, errors.ProviderRequestError),
    ],
)
async def test_azure_http_errors(tmp_settings, status, expected):
    body = (
        b'{"error":{"code":"' + str(status).encode() + b'","message":"Requests to the ChatCompletions_Create '
        b'Operation under Azure OpenAI API version 2024-10-21 have failed. Please retry after 3 seconds."}}'
    )
    replay = Replay(
        httpx, body, status=status, headers={"content-type": "application/json", "retry-after": "3"}
    )
    provider = make_azure(tmp_settings, replay)
    with pytest.raises(expected) as info:
        await collect(provider)
    if status == 429:
        assert info.value.details["retry_after"] == 3.0


@pytest.mark.parametrize(
    "missing", ["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT"]
)
async def test_azure_not_configured(tmp_settings, missing):
    env = {k: v for k, v in AZURE_ENV.items() if k != missing}
    provider = azure.create(tmp_settings, env)
    assert provider.describe()["configured"] is False
    with pytest.raises(errors.ProviderUnavailable, match=missing):
        await collect(provider)


async def test_azure_cancel_closes_response(tmp_settings, autojump_clock):
    body = hanging_stream(httpx, first_event(wire("azure_chat_stream.sse")) + b"")
    provider = make_azure(tmp_settings, Replay(httpx, stream=body))
    with trio.move_on_after(10):
        async for event in provider.stream(REQUEST):
            assert not isinstance(event, Finish)
    assert body.closed


async def test_azure_key_never_leaks(tmp_settings, caplog):
    caplog.set_level(logging.DEBUG)
    body = (
        b'{"error":{"code":"401","message":"Access denied due to invalid subscription key '
        + AZURE_KEY.encode()
        + b'"}}'
    )
    replay = Replay(httpx, body, status=401, headers={"content-type": "application/json"})
    provider = make_azure(tmp_settings, replay)
    with pytest.raises(errors.ProviderRequestError) as info:
        await collect(provider)
    assert not leaked(
        AZURE_KEY, error_text(info.value), repr(provider), str(provider.describe()), log_text(caplog)
    )
