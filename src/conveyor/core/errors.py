"""Every error Conveyor raises, under one root.

Two families matter to users: the handler author's vocabulary (`RetryableError`,
`PermanentError`) and the caller's (`SubmitError` and its children, which the CLI turns into
exit status 2 and the REST API into 4xx answers).
"""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""


# --- configuration and plugins -------------------------------------------------------------


class ConfigurationError(ConveyorError):
    """A setting or a plugin is wrong; raised at start-up, never mid-run."""


class PluginError(ConfigurationError):
    """A plugin declared something invalid (duplicate job type, unknown handler option)."""


# --- the caller's errors -------------------------------------------------------------------


class SubmitError(ConveyorError):
    """A submission was refused before anything was written."""

    code = "invalid_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UnknownJobType(SubmitError):
    code = "unknown_job_type"


class InvalidPayload(SubmitError):
    code = "invalid_payload"


class InvalidOption(SubmitError):
    code = "invalid_option"


class RateLimited(SubmitError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class JobNotFound(ConveyorError):
    """No job has that id."""

    code = "not_found"


class InvalidTransition(ConveyorError):
    """The job's state forbids the action (cancel a finished job, retry a running one)."""

    code = "conflict"


class StoreUnavailable(ConveyorError):
    """The system of record cannot be reached; nothing was written."""

    code = "store_unavailable"


class BrokerUnavailable(ConveyorError):
    """The dispatcher cannot be reached; jobs stay safe in the database."""


# --- the handler author's vocabulary -------------------------------------------------------


class JobError(ConveyorError):
    """Base of the errors a handler raises to classify its own failure."""


class RetryableError(JobError):
    """The attempt failed but another may succeed; `retry_after` (seconds) overrides backoff.

    `throttled=True` says an upstream provider answered "too many requests" (HTTP 429): the
    job is snoozed without using an attempt, and repeated 429s slow its type down for every
    worker (docs/limits.md). `provider` names who throttled, for the error log."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        throttled: bool = False,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled
        self.provider = provider


class Throttled(RetryableError):
    """An upstream provider said "too many requests" (HTTP 429): snooze, don't count it."""

    def __init__(
        self, message: str, retry_after: float | None = None, provider: str | None = None
    ) -> None:
        super().__init__(message, retry_after, throttled=True, provider=provider)


class PermanentError(JobError):
    """Retrying cannot help; the job goes to the dead-letter queue at once."""


class UncertainEffect(RetryableError):
    """Raised inside `ctx.once(key)` when the side effect may or may not have happened (the
    request went out, its answer was lost). The key stays started, as if the worker had died
    there: the next attempt reports it as uncertain and skips it, or repeats it on request."""


class JobTimeout(RetryableError):
    """The attempt ran past the job's timeout."""


class JobCancelled(JobError):
    """The job was cancelled while it ran."""
