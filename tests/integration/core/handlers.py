"""Handlers the engine contract tests run (registered as an explicit plugin)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from pydantic import BaseModel

import conveyor

RAN: list[str] = []
LOCK = threading.Lock()


class Tag(BaseModel):
    tag: str = ""


@conveyor.handler("record", payload=Tag)
def record(payload: Tag, ctx: conveyor.JobContext) -> dict[str, Any]:
    with LOCK:
        RAN.append(payload.tag)
    return {"tag": payload.tag, "attempt": ctx.attempt}


@conveyor.handler("async_record", payload=Tag)
async def async_record(payload: Tag, ctx: conveyor.JobContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"tag": payload.tag}


class Flaky(BaseModel):
    fail_times: int
    permanent: bool = False
    retry_after: float | None = None


@conveyor.handler("flaky_test", payload=Flaky, max_attempts=3)
def flaky_test(payload: Flaky, ctx: conveyor.JobContext) -> dict[str, int]:
    if ctx.attempt <= payload.fail_times:
        if payload.permanent:
            raise conveyor.PermanentError("no way")
        raise conveyor.RetryableError("not yet", retry_after=payload.retry_after)
    return {"attempt": ctx.attempt}


@conveyor.handler("raises", payload=Tag)
def raises(payload: Tag, ctx: conveyor.JobContext) -> None:
    exceptions: dict[str, BaseException] = {
        "value": ValueError("bad value"),
        "connection": ConnectionError("reset by peer"),
        "custom": LookupError("hook decides"),
    }
    raise exceptions[payload.tag]


class Effect(BaseModel):
    key: str
    fail_after: bool = False


@conveyor.handler("effect", payload=Effect, max_attempts=3)
def effect(payload: Effect, ctx: conveyor.JobContext) -> dict[str, Any]:
    with ctx.once(payload.key) as first:
        if first:
            with LOCK:
                RAN.append(payload.key)
    if payload.fail_after and ctx.attempt == 1:
        raise conveyor.RetryableError("after the effect", retry_after=0)
    return {"first": first}


class Nap(BaseModel):
    seconds: float


@conveyor.handler("nap", payload=Nap)
def nap(payload: Nap, ctx: conveyor.JobContext) -> dict[str, bool]:
    deadline = time.monotonic() + payload.seconds
    while time.monotonic() < deadline:
        if ctx.cancelled:
            return {"stopped_early": True}
        time.sleep(0.02)
    return {"stopped_early": False}


@conveyor.handler("progress", payload=Nap)
async def progress(payload: Nap, ctx: conveyor.JobContext) -> None:
    ctx.progress(1, 2)
    await asyncio.sleep(payload.seconds)


@conveyor.hookimpl
def conveyor_handlers() -> list[Any]:
    return [record, async_record, flaky_test, raises, effect, nap, progress]


class ClassifyLookupAsRetryable:
    @conveyor.hookimpl
    def conveyor_classify_error(self, error: BaseException, job: Any) -> str | None:
        return "retryable" if isinstance(error, LookupError) else None
