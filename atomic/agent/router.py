"""The router: which provider answers a request, and what happens when one fails.

Choice: the request's ``provider``; else a ``model`` written ``provider/model``; else
``settings.provider``. Then the ``settings.fallback`` chain. Each provider gets
``settings.provider_retries`` retries of retryable errors with exponential backoff and
jitter (a ``retry_after`` hint on ProviderRateLimited wins). Retries and fallbacks happen
only before the first token reached the client: after that the client has seen text, and
the error goes to it. Each provider runs at most ``settings.provider_concurrency`` requests
at once. Token totals are kept per provider and model.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from ..backoff import backoff
from ..config import Settings
from ..errors import AtomicError, ProviderError, ProviderRateLimited, ProviderRequestError, UnknownProvider
from .providers import PROVIDERS
from .providers.base import Finish, Message, Provider, ProviderRequest, TextDelta, Usage

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    provider: str
    model: str | None


@dataclass(frozen=True)
class Result:
    text: str
    usage: Usage
    provider: str
    model: str
    finish_reason: str
    model_ms: float = 0.0  # time spent waiting on the provider's stream (the model's own)

    def to_wire(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "usage": self.usage.to_dict(),
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "model_ms": round(self.model_ms, 3),
        }


@dataclass
class _Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class RouterStatistics:
    requests: int
    failures: int
    retries: int
    fallbacks: int
    active: dict[str, int]
    usage_totals: tuple[dict[str, Any], ...]


def parse_request(wire: Any, settings: Settings) -> tuple[ProviderRequest, str | None]:
    """A ``generate`` request object from the wire -> (ProviderRequest, provider hint).

    ProviderRequestError (not retryable) names the bad field.
    """
    if not isinstance(wire, dict):
        raise ProviderRequestError("request: expected an object")
    raw_messages = wire.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ProviderRequestError("request.messages: expected a non-empty list")
    messages = []
    for i, m in enumerate(raw_messages):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise ProviderRequestError(f"request.messages[{i}]: expected {{role, content}} strings")
        messages.append(Message(m["role"], m["content"]))

    def pick(name: str, types: tuple[type, ...], default: Any) -> Any:
        value = wire.get(name)
        if value is None:
            return default
        if not isinstance(value, types) or isinstance(value, bool):
            raise ProviderRequestError(f"request.{name}: wrong type")
        return value

    provider = pick("provider", (str,), None)
    model = pick("model", (str,), None)
    max_tokens = pick("max_tokens", (int,), settings.max_tokens)
    if max_tokens <= 0:
        raise ProviderRequestError("request.max_tokens: expected a whole number above 0")
    temperature = float(pick("temperature", (int, float), settings.temperature))
    if temperature < 0:
        raise ProviderRequestError("request.temperature: expected a number, 0 or more")
    seed = pick("seed", (int,), settings.seed)
    stop = pick("stop", (list,), [])
    request = ProviderRequest(
        messages=tuple(messages),
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=tuple(str(s) for s in stop),
    )
    return request, provider


class Router:
    """Routes requests over ``providers``; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.providers = dict(providers)
        self._rng = rng or random.Random()
        self._limiters = {
            name: trio.CapacityLimiter(settings.provider_concurrency) for name in self.providers
        }
        self._totals: dict[tuple[str, str], _Totals] = {}
        self.requests = 0
        self.failures = 0
        self.retries = 0
        self.fallbacks = 0

    def __repr__(self) -> str:
        return (
            f"<Router providers={sorted(self.providers)} default={self.settings.provider!r} "
            f"requests={self.requests} failures={self.failures}>"
        )

    # --- decisions (synchronous) -------------------------------------------------------

    def resolve(self, provider: str | None, model: str | None) -> Route:
        """The first provider to try for a request."""
        if provider:
            return Route(provider, model)
        if model and "/" in model:
            head, _, tail = model.partition("/")
            if head in self.providers or head in PROVIDERS:
                return Route(head, tail or None)
        return Route(self.settings.provider, model)

    def plan(self, provider: str | None, model: str | None) -> list[Route]:
        """The primary route, then each configured fallback (default model) not yet tried."""
        first = self.resolve(provider, model)
        if first.provider not in self.providers:
            if first.provider in PROVIDERS:
                known = ", ".join(sorted(self.providers)) or "none"
                raise UnknownProvider(
                    f"provider {first.provider!r} is not available in this agent (available: {known})"
                )
            raise UnknownProvider(f"no provider named {first.provider!r}")
        routes = [first]
        for name in self.settings.fallback:
            if name in self.providers and all(r.provider != name for r in routes):
                routes.append(Route(name, None))
        return routes

    def backoff(self, attempt: int, exc: ProviderError) -> float:
        """Seconds before retry ``attempt`` (0-based): exponential, jittered, or the hint."""
        hint = exc.details.get("retry_after") if isinstance(exc, ProviderRateLimited) else None
        if isinstance(hint, (int, float)) and hint >= 0:
            return min(float(hint), self.settings.provider_retry_after_cap_s)
        return backoff(attempt, self.settings.provider_backoff_s, self.settings.provider_backoff_cap_s, self._rng)

    def _account(self, provider: str, model: str, usage: Usage) -> None:
        totals = self._totals.setdefault((provider, model), _Totals())
        totals.requests += 1
        totals.prompt_tokens += usage.prompt_tokens
        totals.completion_tokens += usage.completion_tokens

    # --- acting ------------------------------------------------------------------------

    async def generate(self, request: ProviderRequest, *, provider: str | None = None, on_text: OnText) -> Result:
        """Run ``request`` with retries and fallbacks; ``on_text`` gets each delta."""
        self.requests += 1
        try:
            routes = self.plan(provider, request.model)
        except AtomicError:
            self.failures += 1
            raise
        streamed = False

        async def forward(text: str) -> None:
            nonlocal streamed
            streamed = True
            await on_text(text)

        last: ProviderError | None = None
        for index, route in enumerate(routes):
            if index:
                self.fallbacks += 1
                log.warning("falling back from %s to %s: %s", routes[index - 1].provider, route.provider, last)
            attempt = 0
            while True:
                try:
                    return await self._attempt(route, dataclasses.replace(request, model=route.model), forward)
                except ProviderError as exc:
                    last = exc
                except AtomicError:
                    self.failures += 1
                    raise
                except Exception as exc:  # noqa: BLE001 - a provider's untranslated error
                    last = ProviderError(f"{route.provider} failed: {type(exc).__name__}: {exc}")
                if streamed:
                    self.failures += 1
                    raise last
                if last.retryable and attempt < self.settings.provider_retries:
                    delay = self.backoff(attempt, last)
                    attempt += 1
                    self.retries += 1
                    log.info("retrying %s in %.2fs (%s): %s", route.provider, delay, attempt, last)
                    await trio.sleep(delay)
                    continue
                break
        self.failures += 1
        assert last is not None
        raise last

    async def _attempt(self, route: Route, request: ProviderRequest, on_text: OnText) -> Result:
        provider = self.providers[route.provider]
        parts: list[str] = []
        finish: Finish | None = None
        # The model's time is what we wait for its next event; forwarding a delta is ours.
        model_s = 0.0
        async with self._limiters[route.provider]:
            stream = provider.stream(request)
            try:
                while True:
                    t0 = time.perf_counter()
                    try:
                        event = await anext(stream)
                    except StopAsyncIteration:
                        break
                    finally:
                        model_s += time.perf_counter() - t0
                    if isinstance(event, TextDelta):
                        if event.text:
                            parts.append(event.text)
                            await on_text(event.text)
                    elif isinstance(event, Finish):
                        finish = event
                        break
            finally:
                await _aclose(stream)
        if finish is None:
            raise ProviderError(f"{route.provider} ended its stream without finishing")
        self._account(route.provider, finish.model, finish.usage)
        return Result("".join(parts), finish.usage, route.provider, finish.model, finish.finish_reason,
                      model_s * 1000)

    # --- reporting ---------------------------------------------------------------------

    def usage_totals(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": provider,
                "model": model,
                "requests": t.requests,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "total_tokens": t.prompt_tokens + t.completion_tokens,
            }
            for (provider, model), t in sorted(self._totals.items())
        ]

    def describe(self) -> list[dict[str, object]]:
        out = []
        for name, provider in sorted(self.providers.items()):
            try:
                info = dict(provider.describe())
            except Exception as exc:  # noqa: BLE001 - status must not fail on one provider
                info = {"name": name, "error": str(exc)}
            info.setdefault("name", name)
            out.append(info)
        return out

    def statistics(self) -> RouterStatistics:
        return RouterStatistics(
            requests=self.requests,
            failures=self.failures,
            retries=self.retries,
            fallbacks=self.fallbacks,
            active={name: int(lim.borrowed_tokens) for name, lim in self._limiters.items()},
            usage_totals=tuple(self.usage_totals()),
        )

    async def replace(self, fresh: dict[str, Provider]) -> list[str]:
        """Swap in newly built providers (same names keep their concurrency limiters);
        the old ones are closed. Requests already running finish on the old objects."""
        old = {name: self.providers[name] for name in fresh if name in self.providers}
        self.providers.update(fresh)
        for name in fresh:
            self._limiters.setdefault(name, trio.CapacityLimiter(self.settings.provider_concurrency))
        for provider in old.values():
            with trio.move_on_after(self.settings.cleanup_timeout_s, shield=True):
                await provider.aclose()
        return sorted(fresh)

    async def aclose(self) -> None:
        for name, provider in self.providers.items():
            try:
                await provider.aclose()
            except Exception:
                log.exception("closing provider %s failed", name)


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
