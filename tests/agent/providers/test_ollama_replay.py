"""Ollama: recorded /api/chat NDJSON streams through the real provider over httpx."""

from __future__ import annotations

import httpx
import pytest
import trio
from provider_wire import REQUEST, Replay, collect, hanging_stream, wire

from atomic import errors
from atomic.agent.providers import ollama
from atomic.agent.providers.base import TextDelta, Usage

NDJSON = {"content-type": "application/x-ndjson"}


def make(tmp_settings, replay, env=None):
    return ollama.create(tmp_settings, env or {}, http_client=replay.client())


async def test_stream_text_usage_and_request_shape(tmp_settings):
    replay = Replay(httpx, wire("ollama_chat_stream.ndjson"), headers=NDJSON)
    provider = make(tmp_settings, replay)

    text, finish, deltas = await collect(provider)

    assert text == "The sky is blue."
    assert len(deltas) == 3
    assert finish.usage == Usage(prompt_tokens=26, completion_tokens=5, estimated=False)
    assert finish.model == "llama3.2"
    assert finish.finish_reason == "stop"
    assert str(replay.request.url) == "http://127.0.0.1:11434/api/chat"
    assert replay.json() == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": "Print hello."},
        ],
        "stream": True,
        "options": {"temperature": 0.0, "num_predict": 64, "seed": 7, "stop": ["```\n"]},
    }


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        ("https://ollama.example.test", "https://ollama.example.test"),
        ("http://10.0.0.5:11434/", "http://10.0.0.5:11434"),
    ],
)
def test_ollama_host_forms(raw, url):
    assert ollama.host_url(raw) == url


async def test_host_and_model_from_env(tmp_settings):
    replay = Replay(httpx, wire("ollama_chat_stream.ndjson"), headers=NDJSON)
    provider = make(
        tmp_settings, replay, {"OLLAMA_HOST": "gpu-box:8080", "ATOMIC_OLLAMA_MODEL": "qwen2.5-coder"}
    )
    await collect(provider)
    assert str(replay.request.url) == "http://gpu-box:8080/api/chat"
    assert replay.json()["model"] == "qwen2.5-coder"
    assert provider.describe() == {
        "name": "ollama",
        "model": "qwen2.5-coder",
        "configured": True,
        "base_url": "http://gpu-box:8080",
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b'{"error":"model \\"nope\\" not found, try pulling it first"}', errors.ProviderRequestError),
        (500, b'{"error":"llama runner process has terminated"}', errors.ProviderServerError),
        (
            503,
            b'{"error":"server busy, please try again.  maximum pending requests exceeded"}',
            errors.ProviderServerError,
        ),
        (429, b'{"error":"too many requests"}', errors.ProviderRateLimited),
    ],
)
async def test_http_errors(tmp_settings, status, body, expected):
    replay = Replay(
        httpx, body, status=status, headers={"content-type": "application/json", "retry-after": "2"}
    )
    with pytest.raises(expected) as info:
        await collect(make(tmp_settings, replay))
    assert body.decode().split('"error":"')[1][:10].replace("\\", "") in info.value.message.replace("\\", "")


async def test_error_line_mid_stream(tmp_settings):
    provider = make(tmp_settings, Replay(httpx, wire("ollama_stream_error.ndjson"), headers=NDJSON))
    seen = []
    with pytest.raises(errors.ProviderServerError, match="unexpected EOF"):
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert seen == [TextDelta("The")]


async def test_cut_short_is_estimated(tmp_settings):
    lines = wire("ollama_chat_stream.ndjson").splitlines(keepends=True)[:2]
    provider = make(tmp_settings, Replay(httpx, b"".join(lines), headers=NDJSON))
    text, finish, _ = await collect(provider)
    assert text == "The sky"
    assert finish.usage.estimated
    assert finish.finish_reason == "incomplete"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), errors.ProviderUnavailable),
        (httpx.ReadTimeout("slow"), errors.ProviderTimeout),
    ],
)
async def test_transport_errors(tmp_settings, exc, expected):
    with pytest.raises(expected):
        await collect(make(tmp_settings, Replay(httpx, raises=exc)))


async def test_unreachable_server_is_unavailable(tmp_settings):
    # A real connection attempt to a port nobody listens on.
    provider = ollama.create(tmp_settings, {"OLLAMA_HOST": "127.0.0.1:9"})
    try:
        with pytest.raises(errors.ProviderUnavailable):
            await collect(provider)
    finally:
        await provider.aclose()


async def test_cancel_closes_response(tmp_settings, autojump_clock):
    body = hanging_stream(httpx, wire("ollama_chat_stream.ndjson").splitlines(keepends=True)[0])
    provider = make(tmp_settings, Replay(httpx, stream=body, headers=NDJSON))
    seen = []
    with trio.move_on_after(15):
        async for event in provider.stream(REQUEST):
            seen.append(event)
    assert trio.current_time() == 15
    assert seen == [TextDelta("The")]
    assert body.closed
