"""Token estimation: the documented heuristic (tiktoken is not installed here)."""

from __future__ import annotations

from atomic.agent import tokens


def test_empty_text_is_free():
    assert tokens.estimate_tokens("", "gpt-4o") == 0


def test_words_and_symbols():
    # 2 words -> ceil(2 / 0.75) = 3, plus "," and "!"
    assert tokens.estimate_tokens("Hello, world!", None) == 5
    # 9 words -> 12, plus "."
    assert tokens.estimate_tokens("The quick brown fox jumps over the lazy dog.", None) == 13


def test_monotonic_in_text():
    a = tokens.estimate_tokens("print('hi')", None)
    assert tokens.estimate_tokens("print('hi')\nprint('there')", None) > a


def test_prompt_adds_framing_per_message():
    one = tokens.estimate_prompt_tokens(["hi"], None)
    two = tokens.estimate_prompt_tokens(["hi", "hi"], None)
    assert two - one == tokens.MESSAGE_OVERHEAD + tokens.estimate_tokens("hi")
    assert one == tokens.REPLY_OVERHEAD + tokens.MESSAGE_OVERHEAD + 2
