"""Token estimation for providers that report no usage.

Providers report their own usage whenever they can; these estimates are the fallback for
an OpenAI-compatible server that ignores ``stream_options.include_usage``, a stream cut
short before its usage arrived, and the like. Every :class:`~atomic.agent.providers.base.Usage`
built from them carries ``estimated=True``.

``tiktoken`` is used when it happens to be installed (it is not a dependency). Otherwise a
heuristic from OpenAI's rule of thumb that a token is about 0.75 English words: the text is split
into word pieces (``\\w+``) and single symbols (anything else but space); words count
1/0.75 tokens each, symbols one each (BPE vocabularies give most punctuation its own
token). It is rough (code with many operators comes out high) but cheap and monotonic,
which is what accounting needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# A word piece, or one symbol that is neither a word character nor space.
_PIECES = re.compile(r"\w+|[^\w\s]")
# OpenAI's rule of thumb for English text.
WORDS_PER_TOKEN = 0.75
# Per-message framing (role and separators) in chat templates, after OpenAI's cookbook.
MESSAGE_OVERHEAD = 4
# The assistant turn's own header that every chat template appends.
REPLY_OVERHEAD = 3


@lru_cache(maxsize=16)
def _tiktoken_encoding(model: str | None) -> Any:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.encoding_for_model(model or "")
    except Exception:  # noqa: BLE001 - unknown model name or missing BPE file: fall back
        try:
            return tiktoken.get_encoding("cl100k_base")
        except Exception:  # noqa: BLE001 - tiktoken cannot load its files (offline)
            return None


def estimate_tokens(text: str, model: str | None = None) -> int:
    """Tokens ``text`` probably costs with ``model``: exact with tiktoken, else a heuristic."""
    if not text:
        return 0
    enc = _tiktoken_encoding(model)
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))
    words = symbols = 0
    for piece in _PIECES.findall(text):
        if piece[0].isalnum() or piece[0] == "_":
            words += 1
        else:
            symbols += 1
    return math.ceil(words / WORDS_PER_TOKEN) + symbols


def estimate_prompt_tokens(contents: Iterable[str], model: str | None = None) -> int:
    """Prompt tokens for a chat: each message's text plus its template framing."""
    total = REPLY_OVERHEAD
    for content in contents:
        total += MESSAGE_OVERHEAD + estimate_tokens(content, model)
    return total
