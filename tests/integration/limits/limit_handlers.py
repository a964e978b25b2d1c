"""Handlers of the limits suite. Registered as an explicit plugin in the test process, and
loaded by subprocess workers through CONVEYOR_PLUGINS=limit_handlers (this folder on
PYTHONPATH), so the module imports nothing from the test package."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import BaseModel

import conveyor

#: Calls per job id in this process: lets a handler act differently on its first calls even
#: though a throttled job's attempt number does not move.
CALLS: Counter[str] = Counter()


class Work(BaseModel):
    seconds: float = 0.0


class Hog(BaseModel):
    first_attempt_hangs: bool = True


class ProviderCall(BaseModel):
    throttles: int = 0
    retry_after: float = 0.3


@conveyor.handler("limited", payload=Work, rate_limit="20/s")
async def limited(payload: Work, ctx: conveyor.JobContext) -> None:
    await asyncio.sleep(payload.seconds)


@conveyor.handler("tenant_work", payload=Work)
async def tenant_work(payload: Work, ctx: conveyor.JobContext) -> None:
    await asyncio.sleep(payload.seconds)


@conveyor.handler("exclusive", payload=Work, tenant_concurrency=1)
async def exclusive(payload: Work, ctx: conveyor.JobContext) -> None:
    """At most one running per tenant, whatever the tenant settings say."""
    await asyncio.sleep(payload.seconds)


@conveyor.handler("hog", payload=Hog, tenant_concurrency=1)
async def hog(payload: Hog, ctx: conveyor.JobContext) -> int:
    """Holds its tenant's slot until cancelled on the first attempt (its worker is killed)."""
    while payload.first_attempt_hangs and ctx.attempt == 1 and not ctx.cancelled:
        await asyncio.sleep(0.01)
    return ctx.attempt


@conveyor.handler("provider_call", payload=ProviderCall, rate_limit="20/s")
def provider_call(payload: ProviderCall, ctx: conveyor.JobContext) -> dict[str, Any]:
    """Answers 429 on its first `throttles` calls, like an API over its quota."""
    CALLS[ctx.job_id] += 1
    if CALLS[ctx.job_id] <= payload.throttles:
        raise conveyor.Throttled(
            "429 Too Many Requests", retry_after=payload.retry_after, provider="acme-api"
        )
    return {"calls": CALLS[ctx.job_id]}


@conveyor.hookimpl
def conveyor_handlers() -> list[Any]:
    return [limited, tenant_work, exclusive, hog, provider_call]
