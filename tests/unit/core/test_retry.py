from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from conveyor.core.errors import PermanentError, RetryableError
from conveyor.core.retry import RetryPolicy, classify, default_classification


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=60)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (6, 60), (30, 60)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.7  # jitter spreads over the whole range


def test_retry_after_wins_over_the_cap() -> None:
    assert RetryPolicy(2, 10).delay(1, retry_after=120) == 120


class _HTTPError(Exception):
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        headers = {"Retry-After": retry_after} if retry_after else {}
        self.response = httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ConnectionError("reset"), True),
        (TimeoutError(), True),
        (_HTTPError(503), True),
        (_HTTPError(429), True),
        (_HTTPError(404), False),
        (_HTTPError(401), False),
        (ValueError("bad"), False),
        (KeyError("missing"), False),
        (FileNotFoundError("gone"), False),
        (RuntimeError("who knows"), True),
    ],
)
def test_default_classification(error: Exception, retryable: bool) -> None:
    assert default_classification(error).retryable is retryable


def test_upstream_retry_after_is_honoured() -> None:
    assert default_classification(_HTTPError(429, "17")).retry_after == 17


def test_pydantic_validation_is_permanent() -> None:
    class M(BaseModel):
        x: int

    with pytest.raises(ValidationError) as info:
        M.model_validate({"x": "no"})
    assert default_classification(info.value).retryable is False


def test_explicit_classes_beat_the_hook() -> None:
    assert classify(PermanentError("x"), lambda e: "retryable").retryable is False
    verdict = classify(RetryableError("x", retry_after=5), lambda e: "permanent")
    assert verdict.retryable and verdict.retry_after == 5
    assert classify(RuntimeError(), lambda e: "permanent").retryable is False
    assert classify(ValueError(), lambda e: None).retryable is False
