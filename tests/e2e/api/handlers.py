"""Job types the REST tests submit (registered as an explicit plugin)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, field_validator

import conveyor
from conveyor.core.errors import RateLimited


class Greet(BaseModel):
    name: str = Field(min_length=1)
    times: int = 1


@conveyor.handler("greet", payload=Greet, max_attempts=3, timeout=30)
def greet(payload: Greet, ctx: conveyor.JobContext) -> dict[str, Any]:
    """Greets someone; the result says whom."""
    return {"greeted": payload.name, "times": payload.times}


class Hold(BaseModel):
    seconds: float = 10.0


@conveyor.handler("hold", payload=Hold, queue="slow")
async def hold(payload: Hold, ctx: conveyor.JobContext) -> dict[str, Any]:
    """Runs until cancelled or `seconds` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + payload.seconds
    while loop.time() < deadline:
        if ctx.cancelled:
            raise conveyor.JobCancelled("stopped on request")
        await asyncio.sleep(0.02)
    return {"held": payload.seconds}


class Nothing(BaseModel):
    pass


@conveyor.handler("boom", payload=Nothing, max_attempts=1)
def boom(payload: Nothing, ctx: conveyor.JobContext) -> None:
    """Always fails for good."""
    raise conveyor.PermanentError("boom")


class Throttled(BaseModel):
    """Refuses every submission as over its tenant's rate, the way a limiter does (pydantic
    lets exceptions other than ValueError through, so the engine's error reaches the API)."""

    tenant: str = "t"

    @field_validator("tenant")
    @classmethod
    def _over_rate(cls, value: str) -> str:
        raise RateLimited(f"tenant {value!r} is over its submission rate", retry_after=2.5)


@conveyor.handler("throttled", payload=Throttled)
def throttled(payload: Throttled, ctx: conveyor.JobContext) -> None:
    """Never runs: every submission is refused."""


@conveyor.hookimpl
def conveyor_handlers() -> list[Any]:
    return [greet, hold, boom, throttled]
