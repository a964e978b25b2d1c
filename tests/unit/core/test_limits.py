"""The limits' pure parts: rate specifications, per-tenant settings, handler options, the
admission algorithm (which the Lua script mirrors) and the 429 factor."""

from __future__ import annotations

import itertools

import pytest

import conveyor
from conveyor.core.admission import (
    MIN_FACTOR,
    SlotState,
    Window,
    current_factor,
    decide,
    throttle_factor,
)
from conveyor.core.errors import ConfigurationError, PluginError, RetryableError
from conveyor.core.limits import (
    Checks,
    Rate,
    RateCheck,
    Request,
    SlotCheck,
    _per_tenant,
    is_throttle,
    parse_rate,
)
from conveyor.core.store import ClaimedJob

_ids = itertools.count()


def request(*checks: RateCheck | SlotCheck, tenant: str = "t") -> Request:
    job = ClaimedJob(
        str(next(_ids)), "type", "default", 1, "{}", 1, 5, None, 1, tenant, None, 0.0, 0
    )
    rates = tuple(c for c in checks if isinstance(c, RateCheck))
    slots = tuple(c for c in checks if isinstance(c, SlotCheck))
    return Request(job, Checks(rates, slots))


# --- specifications ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "limit", "period"),
    [
        ("50/s", 50, 1.0),
        ("300/m", 300, 60.0),
        ("10/h", 10, 3600.0),
        ("1000/d", 1000, 86400.0),
        ("5/10s", 5, 10.0),
        ("2 / minute", 2, 60.0),
        ("7/2.5sec", 7, 2.5),
        ("3/hours", 3, 3600.0),
    ],
)
def test_rates_parse(spec: str, limit: int, period: float):
    assert parse_rate(spec) == Rate(limit, period)


@pytest.mark.parametrize("spec", ["", "fast", "50", "50/", "0/s", "5/0s", "5/y", "-1/s", "5/.s"])
def test_bad_rates_are_refused(spec: str):
    with pytest.raises(ConfigurationError, match="rate limit"):
        parse_rate(spec)


def test_tenant_settings_have_a_default_and_overrides():
    default, overrides = _per_tenant("100/s, acme=500/s,free=10/m", parse_rate, "X")
    assert default == Rate(100, 1.0)
    assert overrides == {"acme": Rate(500, 1.0), "free": Rate(10, 60.0)}
    assert _per_tenant("acme=2", int, "X") == (None, {"acme": 2})
    assert _per_tenant(5, int, "X") == (5, {})
    assert _per_tenant(None, int, "X") == (None, {})
    with pytest.raises(ConfigurationError, match="names no tenant"):
        _per_tenant("=5", int, "X")


def test_handler_limits_are_checked_at_registration():
    with pytest.raises(PluginError, match="rate limit 'fast'"):
        conveyor.handler("t", rate_limit="fast")
    with pytest.raises(PluginError, match="tenant_concurrency"):
        conveyor.handler("t", tenant_concurrency=0)
    assert conveyor.handler("t", rate_limit="10/h", tenant_concurrency=3)(lambda p, c: None)


def test_throttles_are_recognised():
    class HTTPError(Exception):
        status_code = 429

    assert is_throttle(conveyor.Throttled("slow down", retry_after=2, provider="p"))
    assert is_throttle(RetryableError("slow down", 2, throttled=True))
    assert is_throttle(HTTPError())
    assert not is_throttle(RetryableError("flaky", 2))  # the old signature still works
    assert conveyor.Throttled("x", 3).retry_after == 3


# --- the admission algorithm -------------------------------------------------------------


def test_a_rate_admits_n_then_defers_the_rest_paced():
    check = RateCheck("k", Rate(5, 1.0))
    windows = {"k": Window()}
    waits = decide([request(check) for _ in range(8)], 100.05, windows, {}, {})
    assert waits[:5] == [0.0] * 5
    # The five starts of slice 1000 come back when it leaves the window: at 101.1 s. The
    # backlog behind them is spaced one fifth of a second apart.
    assert waits[5:] == pytest.approx([1.05, 1.25, 1.45])
    assert windows["k"].horizon == pytest.approx(101.7)


def test_a_rate_is_never_exceeded_in_any_window():
    check = RateCheck("k", Rate(7, 1.0))
    windows: dict[str, Window] = {"k": Window()}
    admitted, now = [], 0.0
    while now < 6.0:  # a request every 13 ms, far more than 7/s
        if decide([request(check)], now, windows, {}, {}) == [0.0]:
            admitted.append(now)
        now += 0.013
    assert max(sum(1 for t in admitted if s <= t < s + 1.0) for s in admitted) <= 7
    assert len(admitted) >= 7 * 5  # and the limit is used, not just respected


def test_a_job_blocked_by_one_limit_takes_nothing_from_the_others():
    rate, slot = RateCheck("r", Rate(10, 1.0)), SlotCheck("s", 1, "t")
    windows, slots = {"r": Window()}, {"s": SlotState(count=1, hold=0.5)}
    waits = decide([request(rate, slot), request(rate)], 50.0, windows, {}, slots)
    assert waits[0] == pytest.approx(0.5)  # one slot, held for 0.5 s on average
    assert waits[1] == 0.0
    assert windows["r"].used == 1 and slots["s"].count == 1


def test_concurrency_deferrals_are_spread_by_the_average_hold():
    slot = SlotCheck("s", 2, "t")
    slots = {"s": SlotState(hold=0.4)}
    waits = decide([request(slot) for _ in range(5)], 10.0, {}, {}, slots)
    assert waits == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6])


def test_a_slowed_type_keeps_its_limit_over_a_longer_window():
    check = RateCheck("k", Rate(4, 1.0), adaptive="type")
    windows = {"k": Window()}
    waits = decide([request(check) for _ in range(6)], 20.0, windows, {"type": 0.5}, {})
    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(2.1)  # back once slice 200 left a two-second window
    assert waits[5] == pytest.approx(2.6)  # paced at 4 per two seconds


def test_429s_halve_the_factor_which_recovers():
    factor, at = throttle_factor(1.0, 0.0, 1000.0, recovery=60.0)
    assert (factor, at) == (0.5, 1000.0)
    assert throttle_factor(factor, at, 1000.1, 60.0) == (0.5, 1000.0)  # debounced
    factor, at = throttle_factor(factor, at, 1000.5, 60.0)
    assert factor == pytest.approx(0.25, rel=0.01)
    assert current_factor(factor, at, at + 60.0, 60.0) == pytest.approx(0.5, rel=0.01)
    assert current_factor(factor, at, at + 600.0, 60.0) == 1.0
    for step in range(20):
        factor, at = throttle_factor(factor, at, 2000.0 + step, 60.0)
    assert factor == MIN_FACTOR
