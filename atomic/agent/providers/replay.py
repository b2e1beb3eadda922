"""The replay provider: streams a fixed text, for benchmarks and tests. Never the default.

``ATOMIC_REPLAY_TEXT`` sets the text (default: a short answer with a Python program in a
fence); ``ATOMIC_REPLAY_TOKENS_PER_S`` the rate (0, the default: as fast as possible).
Tokens are words with their trailing whitespace, so the deltas join back into the text.
Usage counts words and is marked estimated.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import trio

from ...config import Settings
from ...errors import ConfigError
from .base import Finish, ProviderRequest, TextDelta, Usage

DEFAULT_TEXT = (
    "Here is a program that prints the first 10 square numbers.\n\n"
    "```python\n"
    "def main() -> None:\n"
    "    for n in range(1, 11):\n"
    "        print(n * n)\n"
    "\n\n"
    'if __name__ == "__main__":\n'
    "    main()\n"
    "```\n"
)

_WORDS = re.compile(r"^\s+|\S+\s*")


def split_words(text: str) -> list[str]:
    """Words with their trailing whitespace (and any leading whitespace alone first)."""
    return _WORDS.findall(text)


class ReplayProvider:
    """Streams ``text`` word by word at ``tokens_per_s`` (0: no pacing)."""

    name = "replay"

    def __init__(self, text: str = DEFAULT_TEXT, tokens_per_s: float = 0.0, model: str = "replay-1") -> None:
        if tokens_per_s < 0:
            raise ValueError("tokens_per_s must be 0 or more")
        self.text = text
        self.tokens_per_s = tokens_per_s
        self.model = model
        self._words = split_words(text)
        self.active = 0  # streams running now
        self.streams = 0  # streams started
        self.tokens_sent = 0

    def __repr__(self) -> str:
        return f"<ReplayProvider words={len(self._words)} rate={self.tokens_per_s}/s active={self.active}>"

    async def stream(self, request: ProviderRequest) -> AsyncIterator[TextDelta | Finish]:
        self.active += 1
        self.streams += 1
        try:
            interval = 1.0 / self.tokens_per_s if self.tokens_per_s else 0.0
            words = self._words
            reason = "stop"
            if len(words) > request.max_tokens:
                words = words[: request.max_tokens]
                reason = "length"
            for word in words:
                if interval:
                    await trio.sleep(interval)
                else:
                    await trio.lowlevel.checkpoint()
                self.tokens_sent += 1
                yield TextDelta(word)
            prompt = sum(len(m.content.split()) for m in request.messages)
            yield Finish(
                usage=Usage(prompt_tokens=prompt, completion_tokens=len(words), estimated=True),
                model=request.model or self.model,
                finish_reason=reason,
            )
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model, "configured": True, "tokens_per_s": self.tokens_per_s}


def create(settings: Settings, env: Mapping[str, str]) -> ReplayProvider:
    text = env.get("ATOMIC_REPLAY_TEXT") or DEFAULT_TEXT
    raw = env.get("ATOMIC_REPLAY_TOKENS_PER_S", "0") or "0"
    try:
        rate = float(raw)
        if not rate >= 0:  # also refuses NaN
            raise ValueError
    except ValueError:
        raise ConfigError(f"ATOMIC_REPLAY_TOKENS_PER_S={raw!r}: expected a number, 0 or more") from None
    return ReplayProvider(text, rate)
