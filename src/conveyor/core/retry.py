"""Retry policy: exponential backoff with full jitter, and error classification."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import (
    InvalidPayload,
    JobTimeout,
    PermanentError,
    RetryableError,
    UnknownJobType,
)

#: HTTP statuses a provider uses to say "later" rather than "never".
RETRYABLE_STATUSES = frozenset({408, 409, 423, 425, 429})


@dataclass(frozen=True, slots=True)
class Classification:
    retryable: bool
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter backoff: a uniform draw in [0, min(cap, base * 2**(attempt-1))]."""

    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        # An explicit or upstream Retry-After wins over the cap: the provider knows best.
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return random.uniform(0, ceiling)


def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "http_status", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _retry_after_of(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float):
        return float(value)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def default_classification(exc: BaseException) -> Classification:
    """What an unclassified error means: network, timeouts, throttling and 5xx are worth
    retrying; validation, missing things, auth and other 4xx are not. Anything else is
    assumed transient, as Celery, Sidekiq and Oban do."""
    if isinstance(exc, RetryableError):
        return Classification(True, exc.retry_after)
    if isinstance(exc, PermanentError | UnknownJobType | InvalidPayload):
        return Classification(False)
    status = _status_of(exc)
    if status is not None:
        if status >= 500 or status in RETRYABLE_STATUSES:
            return Classification(True, _retry_after_of(exc))
        if status >= 400:
            return Classification(False)
    if isinstance(exc, TimeoutError | ConnectionError | JobTimeout):
        return Classification(True)
    if type(exc).__name__ == "ValidationError":  # pydantic and its kin
        return Classification(False)
    if isinstance(exc, FileNotFoundError | PermissionError | LookupError | ValueError | TypeError):
        return Classification(False)
    if isinstance(exc, OSError):
        return Classification(True)
    return Classification(True)


def classify(
    exc: BaseException, hook: Callable[[BaseException], Any] | None = None
) -> Classification:
    """Explicit classes first, then the plugins' `conveyor_classify_error`, then defaults."""
    if isinstance(exc, RetryableError):
        return Classification(True, exc.retry_after)
    if isinstance(exc, PermanentError):
        return Classification(False)
    if hook is not None:
        verdict = hook(exc)
        if verdict in ("retryable", True):
            return Classification(True, _retry_after_of(exc))
        if verdict in ("permanent", False):
            return Classification(False)
    return default_classification(exc)
