"""The token bucket (GCRA), exactly, on a clock the test moves; rates as the settings take them."""

from __future__ import annotations

import pytest

from atomic import config
from atomic.errors import ConfigError
from atomic.ratelimit import LocalLimiter, default_burst, from_settings, parse_rate, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("text", "per_s"), [("20/s", 20.0), ("600/min", 10.0), ("3600/h", 1.0),
                                              ("0.5/s", 0.5), ("90 / minute", 1.5), ("7200/hours", 2.0)])
def test_rates(text, per_s):
    assert parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["0/s", "-1", "fast", "-5/s", "inf/s", "nan/s", "5/day", "5/", "/s", "0.0/min"])
def test_bad_rates_stop_start_up_naming_the_variable(text):
    with pytest.raises(ValueError):
        parse_rate(text)
    with pytest.raises(ConfigError) as info:
        config.load(env={"ATOMIC_RATE_LIMIT": text})
    assert str(info.value) == (f"ATOMIC_RATE_LIMIT={text!r}: expected a rate above 0 such as 20/s, 600/min "
                               "or 3600/h (or empty for unset)")


@pytest.mark.parametrize("burst", ["0", "0.5", "-3", "many"])
def test_a_burst_below_one_is_refused(burst):
    with pytest.raises(ConfigError, match="ATOMIC_RATE_BURST"):
        config.load(env={"ATOMIC_RATE_LIMIT": "5/s", "ATOMIC_RATE_BURST": burst})


def test_default_burst_is_one_seconds_worth():
    assert default_burst(20.0) == 20.0
    assert default_burst(10 / 60) == 1.0
    assert from_settings(None, None) is None
    limiter = from_settings("600/min", None)
    assert limiter is not None and (limiter.rate, limiter.burst) == (10.0, 10.0)


def test_a_burst_then_one_token_per_interval():
    clock = Clock()
    limiter = LocalLimiter(2.0, 3, clock=clock)  # 2/s, 3 at once
    assert [limiter.acquire_nowait("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire_nowait("a") == pytest.approx(0.5)  # the 4th fits in half a second
    clock.t += 0.25
    assert limiter.acquire_nowait("a") == pytest.approx(0.25)
    clock.t += 0.25
    assert limiter.acquire_nowait("a") == 0.0
    assert limiter.acquire_nowait("a") == pytest.approx(0.5)
    # Another client has its own bucket.
    assert limiter.acquire_nowait("b") == 0.0
    s = limiter.statistics()
    assert (s.allowed, s.limited, s.keys) == (5, 3, 2)


def test_waiting_the_retry_after_always_succeeds():
    """The header's whole seconds, rounded up, are never too few."""
    clock = Clock()
    limiter = LocalLimiter(1 / 7, 1, clock=clock)  # one per 7 s
    start = clock.t
    assert limiter.acquire_nowait("k") == 0.0
    for offset in (0.0, 0.3, 2.9, 6.99):
        clock.t = start + offset
        wait = limiter.acquire_nowait("k")
        assert wait > 0
        seconds = int(retry_after_header(wait))
        assert seconds >= wait and seconds - wait < 1
    clock.t += int(retry_after_header(limiter.acquire_nowait("k")))
    assert limiter.acquire_nowait("k") == 0.0


def test_retry_after_header_is_whole_seconds_at_least_one():
    assert [retry_after_header(w) for w in (0.001, 0.5, 1.0, 1.0000001, 59.2)] == ["1", "1", "1", "2", "60"]


def test_full_buckets_are_forgotten_so_memory_stays_bounded():
    clock = Clock()
    limiter = LocalLimiter(10.0, 1, clock=clock)
    for i in range(1025):
        limiter.acquire_nowait(f"addr:{i}")
    assert limiter.statistics().keys == 1025  # swept once, but every client still owes a token
    clock.t += 1.0  # every bucket has refilled
    limiter.acquire_nowait("addr:late")
    for i in range(2000):
        limiter.acquire_nowait(f"more:{i}")
        clock.t += 0.2  # each bucket full again before the next sweep
    assert limiter.statistics().keys < 1100


def test_reconfigure_keeps_what_clients_used():
    clock = Clock()
    limiter = LocalLimiter(1.0, 2, clock=clock)
    assert limiter.acquire_nowait("a") == limiter.acquire_nowait("a") == 0.0
    assert limiter.acquire_nowait("a") == pytest.approx(1.0)
    limiter.reconfigure(1.0, 4)  # a bigger bucket: the same client gets two more now
    assert limiter.acquire_nowait("a") == limiter.acquire_nowait("a") == 0.0
    assert limiter.acquire_nowait("a") > 0
    with pytest.raises(ValueError):
        limiter.reconfigure(0.0, 1)


def test_a_new_rate_pays_back_the_debt_at_that_rate():
    clock = Clock()
    limiter = LocalLimiter(1 / 60, 2, clock=clock)  # 1/min, 2 at once
    assert limiter.acquire_nowait("a") == limiter.acquire_nowait("a") == 0.0
    assert limiter.acquire_nowait("a") == pytest.approx(60.0)
    limiter.reconfigure(1.0, 2)  # 1/s: two requests owed, the next token in one second
    assert limiter.acquire_nowait("a") == pytest.approx(1.0)
    clock.t += 1.0
    assert limiter.acquire_nowait("a") == 0.0
