"""Job types the REST tests submit (registered as an explicit plugin)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

import conveyor


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


@conveyor.hookimpl
def conveyor_handlers() -> list[Any]:
    return [greet, hold, boom]
