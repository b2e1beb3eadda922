"""The provider registry and the replay provider."""

from __future__ import annotations

import logging

import pytest
import trio

from atomic.agent import providers as registry
from atomic.agent.providers.base import Finish, Message, Provider, ProviderRequest, TextDelta
from atomic.agent.providers.replay import DEFAULT_TEXT, ReplayProvider, create, split_words
from atomic.errors import ConfigError

REQUEST = ProviderRequest(messages=(Message("user", "three little words"),))


async def events(provider, request=REQUEST):
    out = []
    async for ev in provider.stream(request):
        out.append(ev)
    return out


def test_split_words_roundtrip() -> None:
    for text in (DEFAULT_TEXT, "  lead", "a  b\n\nc ", "", "one"):
        assert "".join(split_words(text)) == text


async def test_replay_streams_words_at_rate(tmp_settings, autojump_clock) -> None:
    provider = create(tmp_settings, {"ATOMIC_REPLAY_TEXT": "a b c d e", "ATOMIC_REPLAY_TOKENS_PER_S": "10"})
    assert isinstance(provider, Provider)
    evs = await events(provider)
    assert [e.text for e in evs[:-1]] == ["a ", "b ", "c ", "d ", "e"]
    assert trio.current_time() == pytest.approx(0.5)
    finish = evs[-1]
    assert isinstance(finish, Finish)
    assert finish.usage.to_dict() == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                                      "estimated": True}
    assert finish.finish_reason == "stop"


async def test_replay_default_is_a_python_program(tmp_settings, autojump_clock) -> None:
    provider = create(tmp_settings, {})
    evs = await events(provider)
    text = "".join(e.text for e in evs if isinstance(e, TextDelta))
    assert text == DEFAULT_TEXT
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "<replay>", "exec"), scope)
    assert trio.current_time() == 0.0
    assert provider.describe()["name"] == "replay"


async def test_replay_max_tokens_and_cancel(tmp_settings, autojump_clock) -> None:
    provider = ReplayProvider("a b c d e", tokens_per_s=1)
    evs = await events(provider, ProviderRequest(messages=REQUEST.messages, max_tokens=2, model="m"))
    assert evs[-1].finish_reason == "length" and evs[-1].model == "m"
    assert evs[-1].usage.completion_tokens == 2
    with trio.move_on_after(2.5):
        await events(provider)
    assert provider.active == 0 and provider.tokens_sent == 4


def test_replay_bad_rate(tmp_settings) -> None:
    with pytest.raises(ConfigError, match="ATOMIC_REPLAY_TOKENS_PER_S"):
        create(tmp_settings, {"ATOMIC_REPLAY_TOKENS_PER_S": "fast"})


def test_registry_names() -> None:
    assert set(registry.PROVIDERS) == {"local", "replay", "openai", "azure", "anthropic", "bedrock", "ollama"}


def test_build_providers_skips_what_cannot_be_built(tmp_settings, monkeypatch, caplog) -> None:
    monkeypatch.setitem(registry.PROVIDERS, "ghost", "atomic.agent.providers._no_such_module")
    monkeypatch.setitem(registry.PROVIDERS, "broken", "atomic.agent.providers.base")  # has no create()
    caplog.set_level(logging.WARNING)
    built, skipped = registry.build_providers_report(tmp_settings, {})
    assert "replay" in built and "local" in built
    assert {"ghost", "broken"} <= set(skipped)
    assert "ghost" in caplog.text
    assert set(registry.build_providers(tmp_settings, {})) == set(built)
    for provider in built.values():
        assert isinstance(provider, Provider)
