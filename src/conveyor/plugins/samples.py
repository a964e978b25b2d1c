"""Small built-in handlers for trying Conveyor, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, Field

from conveyor import JobContext, PermanentError, RetryableError, handler, hookimpl


class Noop(BaseModel):
    pass


@handler("noop", payload=Noop, description="Does nothing; for benchmarks and smoke tests.")
async def noop(payload: Noop, ctx: JobContext) -> None:
    return None


class Sleep(BaseModel):
    seconds: float = Field(ge=0, le=3600)


@handler("sleep", payload=Sleep, description="Sleeps, checking for cancellation.")
async def sleep(payload: Sleep, ctx: JobContext) -> dict[str, float]:
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline and not ctx.cancelled:
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        ctx.progress(payload.seconds - max(0.0, deadline - time.monotonic()), payload.seconds)
    return {"slept": payload.seconds}


class Echo(BaseModel):
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


@handler("echo", payload=Echo, description="Returns its payload as the result.")
def echo(payload: Echo, ctx: JobContext) -> dict[str, Any]:
    return payload.model_dump()


class Flaky(BaseModel):
    fail_times: int = Field(ge=0, default=1)
    key: str


@handler(
    "flaky",
    payload=Flaky,
    max_attempts=5,
    description="Fails with a retryable error its first `fail_times` attempts.",
)
def flaky(payload: Flaky, ctx: JobContext) -> dict[str, Any]:
    if ctx.attempt <= payload.fail_times:
        raise RetryableError(f"attempt {ctx.attempt} failed on purpose", retry_after=0.2)
    return {"succeeded_on_attempt": ctx.attempt}


class Fail(BaseModel):
    reason: str = "failing on purpose"


@handler("fail", payload=Fail, description="Fails permanently; lands in the dead-letter queue.")
def fail(payload: Fail, ctx: JobContext) -> None:
    raise PermanentError(payload.reason)


@hookimpl
def conveyor_handlers() -> list[Any]:
    return [noop, sleep, echo, flaky, fail]
