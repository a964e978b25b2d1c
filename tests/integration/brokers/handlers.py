"""Handlers the broker contract tests run (registered as an explicit plugin)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

import conveyor


class Item(BaseModel):
    n: int = 0


class Flaky(BaseModel):
    fail_times: int = 1


class Pause(BaseModel):
    seconds: float = 0.0


@conveyor.handler("task", payload=Item)
def task(payload: Item, ctx: conveyor.JobContext) -> dict[str, Any]:
    return {"n": payload.n}


@conveyor.handler("other_task", payload=Item, queue="other")
def other_task(payload: Item, ctx: conveyor.JobContext) -> dict[str, Any]:
    return {"n": payload.n}


@conveyor.handler("flaky", payload=Flaky, max_attempts=3)
def flaky(payload: Flaky, ctx: conveyor.JobContext) -> dict[str, Any]:
    if ctx.attempt <= payload.fail_times:
        raise conveyor.RetryableError(f"attempt {ctx.attempt} fails on purpose", retry_after=0.3)
    return {"attempt": ctx.attempt}


@conveyor.handler("pause", payload=Pause)
async def pause(payload: Pause, ctx: conveyor.JobContext) -> dict[str, Any]:
    """Sleeps (until cancelled when `seconds` is 0)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (payload.seconds or 3600)
    while loop.time() < deadline and not ctx.cancelled:
        await asyncio.sleep(0.005)
    return {"slept": payload.seconds}


@conveyor.hookimpl
def conveyor_handlers() -> list[Any]:
    return [task, other_task, flaky, pause]
