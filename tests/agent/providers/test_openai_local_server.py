"""The OpenAI provider against a real OpenAI-compatible server (llama_cpp.server, SmolLM2)."""

from __future__ import annotations

import pytest
import trio
from provider_wire import collect

from atomic.agent.providers import openai
from atomic.agent.providers.base import Message, ProviderRequest, TextDelta

pytestmark = [pytest.mark.model, pytest.mark.slow]

REQUEST = ProviderRequest(
    messages=(Message("system", "You are terse."), Message("user", "Name three colours.")),
    max_tokens=24,
    temperature=0.0,
    seed=42,
)


@pytest.fixture
async def provider(tmp_settings, llama_server):
    p = openai.create(tmp_settings, {"OPENAI_BASE_URL": llama_server})
    yield p
    await p.aclose()


async def test_streams_deltas_then_finish(provider):
    with trio.fail_after(120):
        text, finish, deltas = await collect(provider, REQUEST)
    assert len(deltas) >= 3
    assert text.strip()
    assert finish.finish_reason in ("stop", "length")
    assert finish.usage.completion_tokens > 0
    assert finish.usage.prompt_tokens > 0


async def test_streamed_usage_matches_unstreamed(provider):
    with trio.fail_after(120):
        streamed_text, streamed, _ = await collect(provider, REQUEST)
        whole_text, whole = await provider.complete(REQUEST)
    # temperature 0 and a fixed seed: the same tokens either way.
    assert streamed_text == whole_text
    assert streamed.finish_reason == whole.finish_reason
    assert not whole.usage.estimated
    if streamed.usage.estimated:
        # The server sent no usage chunk; ours is a heuristic count of the same text.
        assert 0.5 * whole.usage.completion_tokens <= streamed.usage.completion_tokens
        assert streamed.usage.completion_tokens <= 2 * whole.usage.completion_tokens
        pytest.xfail(
            "llama_cpp.server 0.3.36 ignores stream_options.include_usage, so streamed usage "
            "is estimated; exact equality holds only for servers that stream usage"
        )
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )


async def test_cancel_mid_stream(provider):
    long = ProviderRequest(
        messages=(Message("user", "Tell a long story about a fox."),),
        max_tokens=400,
        temperature=0.0,
        seed=42,
    )
    seen: list[TextDelta] = []
    with trio.fail_after(120):
        with trio.CancelScope() as scope:
            async for event in provider.stream(long):
                seen.append(event)
                if len(seen) == 3:
                    scope.cancel()
        assert scope.cancelled_caught
        assert len(seen) == 3
        # The server is free again: a fresh request completes.
        text, _finish, _ = await collect(provider, REQUEST)
    assert text
