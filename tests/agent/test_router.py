"""The router's choices, retries, fallbacks and limits, in virtual time.

The providers here are small fakes implementing the Provider protocol: the router is the
code under test.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import trio

from atomic.agent.providers.base import Finish, Message, Provider, ProviderRequest, TextDelta, Usage
from atomic.agent.router import Router, parse_request
from atomic.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderServerError,
    UnknownProvider,
)

REQUEST = ProviderRequest(messages=(Message("user", "hi"),))


class MaxRandom(random.Random):
    def random(self) -> float:  # jitter at its ceiling: delays are exact
        return 1.0


class Scripted:
    """Fails with the scripted errors first (optionally after some tokens), then answers."""

    def __init__(self, name: str, failures: list[BaseException] | None = None, *,
                 tokens_before_failure: int = 0, delay: float = 0.0, text: str = "ok") -> None:
        self.name = name
        self.failures = list(failures or [])
        self.tokens_before_failure = tokens_before_failure
        self.delay = delay
        self.text = text
        self.calls: list[tuple[float, ProviderRequest]] = []
        self.active = 0
        self.peak = 0
        self.closed = False

    async def stream(self, request: ProviderRequest) -> AsyncIterator[TextDelta | Finish]:
        self.calls.append((trio.current_time(), request))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                await trio.sleep(self.delay)
            if self.failures:
                for i in range(self.tokens_before_failure):
                    yield TextDelta(f"t{i} ")
                raise self.failures.pop(0)
            yield TextDelta(self.text)
            yield Finish(Usage(3, 1), model=request.model or f"{self.name}-default")
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        self.closed = True

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "configured": True}


def make(tmp_settings, *providers: Scripted, **changes) -> Router:
    settings = tmp_settings.replace(provider=providers[0].name, **changes)
    for p in providers:
        assert isinstance(p, Provider)
    return Router(settings, {p.name: p for p in providers}, rng=MaxRandom())


async def collect(router: Router, request: ProviderRequest = REQUEST, provider: str | None = None):
    texts: list[str] = []

    async def on_text(text: str) -> None:
        texts.append(text)

    result = await router.generate(request, provider=provider, on_text=on_text)
    return result, texts


async def test_default_provider(tmp_settings, autojump_clock) -> None:
    a = Scripted("a")
    router = make(tmp_settings, a)
    result, texts = await collect(router)
    assert texts == ["ok"]
    assert (result.text, result.provider, result.model, result.finish_reason) == ("ok", "a", "a-default", "stop")
    assert result.to_wire()["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
                                         "estimated": False}


async def test_choice_by_provider_and_by_model_prefix(tmp_settings, autojump_clock) -> None:
    a, b = Scripted("a"), Scripted("b")
    router = make(tmp_settings, a, b)
    assert (await collect(router, provider="b"))[0].provider == "b"
    r, _ = await collect(router, ProviderRequest(messages=REQUEST.messages, model="b/big-1"))
    assert (r.provider, r.model) == ("b", "big-1")
    assert b.calls[-1][1].model == "big-1"
    # A slash that names no provider is a model name for the default provider.
    r, _ = await collect(router, ProviderRequest(messages=REQUEST.messages, model="org/model"))
    assert (r.provider, r.model) == ("a", "org/model")


async def test_unknown_provider(tmp_settings, autojump_clock) -> None:
    router = make(tmp_settings, Scripted("a"))
    with pytest.raises(UnknownProvider, match="no provider named 'zzz'"):
        await collect(router, provider="zzz")
    with pytest.raises(UnknownProvider, match="not available"):
        await collect(router, provider="openai")  # registered, not built here
    assert router.statistics().failures == 2


async def test_retries_with_exponential_backoff(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderServerError("500"), ProviderServerError("502")])
    router = make(tmp_settings, a, provider_retries=2)
    result, _ = await collect(router)
    assert result.provider == "a"
    assert [t for t, _ in a.calls] == [0.0, 0.5, 1.5]  # 0.5 s, then 1.0 s
    assert router.statistics().retries == 2


async def test_jitter_stays_within_the_ceiling(tmp_settings) -> None:
    router = Router(tmp_settings, {}, rng=random.Random(7))
    delays = [router.backoff(3, ProviderServerError()) for _ in range(100)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1
    assert router.backoff(10, ProviderServerError()) <= 8.0


async def test_retry_after_hint_wins(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderRateLimited("slow down", retry_after=7)])
    router = make(tmp_settings, a)
    await collect(router)
    assert [t for t, _ in a.calls] == [0.0, 7.0]


async def test_fallback_after_retries_are_spent(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderServerError()] * 3)
    b = Scripted("b", text="from b")
    router = make(tmp_settings, a, b, provider_retries=1, fallback=("b",))
    result, texts = await collect(router, ProviderRequest(messages=REQUEST.messages, model="a-model"))
    assert (result.provider, texts) == ("b", ["from b"])
    assert len(a.calls) == 2
    assert b.calls[0][1].model is None  # a fallback uses its own default model
    s = router.statistics()
    assert (s.retries, s.fallbacks, s.failures) == (1, 1, 0)


async def test_non_retryable_error_falls_back_at_once(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderRequestError("bad request")])
    b = Scripted("b")
    router = make(tmp_settings, a, b, fallback=("b", "missing"))
    result, _ = await collect(router)
    assert result.provider == "b"
    assert len(a.calls) == 1
    assert trio.current_time() == 0.0


async def test_last_error_when_every_provider_fails(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderRequestError("a refused")])
    b = Scripted("b", [ProviderRequestError("b refused")])
    router = make(tmp_settings, a, b, fallback=("b",))
    with pytest.raises(ProviderRequestError, match="b refused"):
        await collect(router)
    assert router.statistics().failures == 1


async def test_no_retry_or_fallback_once_tokens_streamed(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [ProviderServerError("died mid-way")], tokens_before_failure=2)
    b = Scripted("b")
    router = make(tmp_settings, a, b, fallback=("b",))
    texts: list[str] = []

    async def on_text(text: str) -> None:
        texts.append(text)

    with pytest.raises(ProviderServerError):
        await router.generate(REQUEST, on_text=on_text)
    assert texts == ["t0 ", "t1 "]
    assert len(a.calls) == 1 and not b.calls


async def test_untranslated_exception_becomes_provider_error(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", [KeyError("oops")])
    b = Scripted("b")
    router = make(tmp_settings, a, b, fallback=("b",))
    assert (await collect(router))[0].provider == "b"
    router2 = make(tmp_settings, Scripted("a", [KeyError("oops")]))
    with pytest.raises(ProviderError, match="KeyError"):
        await collect(router2)


async def test_per_provider_concurrency_limit(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", delay=1.0)
    router = make(tmp_settings, a, provider_concurrency=2)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(collect, router)
    assert a.peak == 2
    assert trio.current_time() == 3.0


async def test_usage_totals_and_close(tmp_settings, autojump_clock) -> None:
    a, b = Scripted("a"), Scripted("b")
    router = make(tmp_settings, a, b)
    await collect(router)
    await collect(router)
    await collect(router, provider="b")
    assert router.usage_totals() == [
        {"provider": "a", "model": "a-default", "requests": 2, "prompt_tokens": 6, "completion_tokens": 2,
         "total_tokens": 8},
        {"provider": "b", "model": "b-default", "requests": 1, "prompt_tokens": 3, "completion_tokens": 1,
         "total_tokens": 4},
    ]
    assert [d["name"] for d in router.describe()] == ["a", "b"]
    assert "requests=3" in repr(router)
    await router.aclose()
    assert a.closed and b.closed


async def test_cancellation_is_not_retried(tmp_settings, autojump_clock) -> None:
    a = Scripted("a", delay=10.0)
    router = make(tmp_settings, a)
    with trio.move_on_after(1.0):
        await collect(router)
    assert len(a.calls) == 1 and a.active == 0
    assert router.statistics().active == {"a": 0}


def test_parse_request(tmp_settings) -> None:
    req, provider = parse_request(
        {"messages": [{"role": "user", "content": "x"}], "provider": "replay", "max_tokens": 5,
         "temperature": 0, "seed": 1}, tmp_settings)
    assert provider == "replay"
    assert (req.max_tokens, req.temperature, req.seed) == (5, 0.0, 1)
    req, provider = parse_request({"messages": [{"role": "user", "content": "x"}]}, tmp_settings)
    assert (req.max_tokens, req.temperature, req.seed, provider) == (
        tmp_settings.max_tokens, tmp_settings.temperature, tmp_settings.seed, None)
    for bad in ({}, {"messages": []}, {"messages": [{"role": 1}]},
                {"messages": [{"role": "u", "content": "x"}], "max_tokens": 0},
                {"messages": [{"role": "u", "content": "x"}], "max_tokens": True},
                {"messages": [{"role": "u", "content": "x"}], "temperature": "hot"}, "nope"):
        with pytest.raises(ProviderRequestError):
            parse_request(bad, tmp_settings)
