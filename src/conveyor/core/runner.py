"""Running one attempt: payload in, `Completion` out. Never raises."""

from __future__ import annotations

import asyncio
import contextvars
import time
import traceback
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from conveyor.core.context import JobContext
from conveyor.core.errors import JobCancelled, JobTimeout, PermanentError, UnknownJobType
from conveyor.core.jobs import Outcome, Status
from conveyor.core.limits import is_throttle
from conveyor.core.retry import classify
from conveyor.core.store import ClaimedJob, Completion

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

ERROR_LIMIT = 4000


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _encode_result(value: Any, uncertain: list[str]) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if uncertain:
        if isinstance(value, dict):
            value = {**value, "uncertain_effects": uncertain}
        else:
            value = {"value": value, "uncertain_effects": uncertain}
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def run_attempt(
    app: Conveyor, claimed: ClaimedJob, ctx: JobContext, threads: Executor
) -> Completion:
    """Run the handler under its timeout and turn whatever happens into a Completion."""
    started = time.time()
    timed_out = False
    try:
        handler = app.registry.get(claimed.type)
        payload = handler.parse(orjson.loads(claimed.payload))
        timeout = claimed.timeout or handler.timeout
        if handler.is_async:
            call = handler.func(payload, ctx)
        else:
            loop = asyncio.get_running_loop()
            run = contextvars.copy_context().run
            call = loop.run_in_executor(threads, run, handler.func, payload, ctx)
        try:
            if timeout is None:
                value = await call
            else:
                async with asyncio.timeout(timeout):
                    value = await call
        except TimeoutError:
            if timeout is not None and ctx.cancelled is False and time.time() - started >= timeout:
                timed_out = True
                ctx.cancel("timeout")  # a thread cannot be killed: ask it to stop
                raise JobTimeout(f"timed out after {timeout:g}s") from None
            raise
        if ctx.cancel_reason == "user":
            # The handler saw the cancellation and stopped early: the job is cancelled.
            return _cancelled(claimed, ctx, started, "cancelled while running", "JobCancelled")
        result = _encode_result(value, ctx.uncertain_effects)
        return _completion(
            claimed, ctx, started, Status.SUCCEEDED, Outcome.SUCCEEDED, result=result
        )
    except JobCancelled as exc:
        return _cancelled(claimed, ctx, started, _error_text(exc), type(exc).__name__)
    except UnknownJobType as exc:
        return _failure(app, claimed, ctx, started, PermanentError(exc.message), timed_out)
    except Exception as exc:
        return _failure(app, claimed, ctx, started, exc, timed_out)


def _cancelled(
    claimed: ClaimedJob, ctx: JobContext, started: float, error: str, error_type: str
) -> Completion:
    return _completion(
        claimed,
        ctx,
        started,
        Status.CANCELLED,
        Outcome.CANCELLED,
        error=error,
        error_type=error_type,
    )


def _failure(
    app: Conveyor,
    claimed: ClaimedJob,
    ctx: JobContext,
    started: float,
    exc: BaseException,
    timed_out: bool,
) -> Completion:
    error = _error_text(exc)
    if ctx.cancel_reason == "user":
        return _cancelled(claimed, ctx, started, error, type(exc).__name__)
    verdict = classify(exc, lambda e: app.plugins.classify_error(e, claimed))
    outcome = (
        Outcome.TIMEOUT
        if timed_out
        else (Outcome.RETRYABLE_ERROR if verdict.retryable else Outcome.PERMANENT_ERROR)
    )
    if verdict.retryable and not timed_out and is_throttle(exc):
        # The provider refused to serve, the job did not fail: snooze it without using an
        # attempt, but log the execution so the audit trail shows every 429.
        provider = getattr(exc, "provider", None)
        return _completion(
            claimed,
            ctx,
            started,
            Status.RETRYING,
            Outcome.RETRYABLE_ERROR,
            error=f"{error} (provider {provider})" if provider else error,
            error_type=type(exc).__name__,
            delay=app.retry_policy.delay(claimed.attempts, verdict.retry_after),
            attempt_delta=-1,
            throttled=True,
        )
    if verdict.retryable and claimed.attempts < claimed.max_attempts:
        delay = app.retry_policy.delay(claimed.attempts, verdict.retry_after)
        return _completion(
            claimed,
            ctx,
            started,
            Status.RETRYING,
            outcome,
            error=error,
            error_type=type(exc).__name__,
            delay=delay,
        )
    if verdict.retryable:
        error = f"gave up after {claimed.attempts} attempts: {error}"
    ctx.logger.debug("job %s failed: %s", claimed.id, "".join(traceback.format_exception(exc)))
    return _completion(
        claimed, ctx, started, Status.DEAD, outcome, error=error, error_type=type(exc).__name__
    )


def _completion(
    claimed: ClaimedJob,
    ctx: JobContext,
    started: float,
    status: Status,
    outcome: Outcome,
    **fields: Any,
) -> Completion:
    progress = ctx.current_progress
    return Completion(
        id=claimed.id,
        lease_token=claimed.lease_token,
        status=status.value,
        outcome=outcome.value,
        started_at=started,
        duration_ms=round((time.time() - started) * 1000, 3),
        progress=orjson.dumps(progress).decode() if progress else None,
        **fields,
    )
