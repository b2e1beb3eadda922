"""The replay provider: streams a fixed text, for benchmarks and tests. Never the default.

``ATOMIC_REPLAY_TEXT`` sets the text (default: a short answer with a Python program in a
fence); ``ATOMIC_REPLAY_TOKENS_PER_S`` the rate (0, the default: as fast as possible).
Tokens are words with their trailing whitespace, so the deltas join back into the text.
Usage counts words and is marked estimated.

Several texts (``ATOMIC_REPLAY_TEXTS``, a JSON list, or a list given in code) give
different answers to different samples and rounds, reproducibly: a request is answered
with ``texts[(seed + rounds) % len(texts)]``, where ``rounds`` counts the assistant turns
already in its messages (a repair's earlier answers) and a missing seed counts as 0. So a
job with ``seed: 0`` gets text i for its sample i, and the next text for each repair.
The last requests are kept (``requests``) for tests to read what a model was asked.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence

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

    def __init__(self, text: str | Sequence[str] = DEFAULT_TEXT, tokens_per_s: float = 0.0,
                 model: str = "replay-1") -> None:
        if tokens_per_s < 0:
            raise ValueError("tokens_per_s must be 0 or more")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("at least one text is needed")
        self.text = texts[0]
        self.texts = texts
        self.tokens_per_s = tokens_per_s
        self.model = model
        self._words = [split_words(t) for t in texts]
        self.active = 0  # streams running now
        self.streams = 0  # streams started
        self.tokens_sent = 0
        self.requests: deque[ProviderRequest] = deque(maxlen=64)  # the latest ones, oldest first

    def __repr__(self) -> str:
        return (f"<ReplayProvider texts={len(self.texts)} words={len(self._words[0])} rate={self.tokens_per_s}/s "
                f"active={self.active}>")

    def answer(self, request: ProviderRequest) -> int:
        """Which text answers ``request``: ``(seed + rounds) % len(texts)``."""
        rounds = sum(1 for m in request.messages if m.role == "assistant")
        return ((request.seed or 0) + rounds) % len(self.texts)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[TextDelta | Finish]:
        self.active += 1
        self.streams += 1
        self.requests.append(request)
        try:
            interval = 1.0 / self.tokens_per_s if self.tokens_per_s else 0.0
            words = self._words[self.answer(request)]
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
    text: str | list[str] = env.get("ATOMIC_REPLAY_TEXT") or DEFAULT_TEXT
    raw_texts = env.get("ATOMIC_REPLAY_TEXTS")
    if raw_texts:
        try:
            texts = json.loads(raw_texts)
        except ValueError:
            texts = None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ConfigError("ATOMIC_REPLAY_TEXTS: expected a JSON list of one or more strings")
        text = texts
    raw = env.get("ATOMIC_REPLAY_TOKENS_PER_S", "0") or "0"
    try:
        rate = float(raw)
        if not rate >= 0:  # also refuses NaN
            raise ValueError
    except ValueError:
        raise ConfigError(f"ATOMIC_REPLAY_TOKENS_PER_S={raw!r}: expected a number, 0 or more") from None
    return ReplayProvider(text, rate)
