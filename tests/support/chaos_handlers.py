"""Handlers for the Redis and PostgreSQL fault tests, loaded by subprocess workers through
CONVEYOR_PLUGINS=chaos_handlers (tests/support on PYTHONPATH).

`chaos_effect` performs one side effect per job inside `ctx.once`: it appends the job id to an
effects file, halfway through a body that takes `work` seconds, so a worker killed in the body
may die before or after the line. A duplicate line is an effect that ran twice; a missing line
must belong to a job whose ledger key is uncertain.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import orjson
from pydantic import BaseModel, Field

from conveyor import JobContext, handler, hookimpl


def append_line(path: str, line: str) -> None:
    """Append one line with a single write, so lines from several processes never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def trace(path: str | None, event: str, ctx: JobContext, **extra: Any) -> None:
    if path:
        record = {
            "event": event,
            "job": ctx.job_id,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "at": time.time(),
            **extra,
        }
        append_line(path, orjson.dumps(record).decode())


class Effect(BaseModel):
    effects: str  # one line per side effect
    trace: str | None = None
    work: float = Field(default=0.0, ge=0)  # seconds inside the once body, around the effect
    hold: float = Field(default=0.0, ge=0)  # seconds after the body on early attempts...
    hold_attempts: int = 1  # ...up to this attempt...
    release: str | None = None  # ...or until this file exists


@handler("chaos_effect", payload=Effect, max_attempts=20)
def chaos_effect(payload: Effect, ctx: JobContext) -> dict[str, Any]:
    """Append the job id to the effects file at most once; hold afterwards on request.

    The sleeps ignore cancellation on purpose: they stand for a call that cannot be
    interrupted, which is what leases and the fence exist for.
    """
    trace(payload.trace, "started", ctx)
    with ctx.once(f"effect:{ctx.job_id}") as first:
        if first:
            time.sleep(payload.work / 2)
            append_line(payload.effects, ctx.job_id)
            time.sleep(payload.work / 2)
    trace(payload.trace, "effect", ctx, first=first)
    if payload.hold and ctx.attempt <= payload.hold_attempts:
        deadline = time.monotonic() + payload.hold
        while time.monotonic() < deadline:
            if payload.release and os.path.exists(payload.release):
                break
            time.sleep(0.05)
    trace(payload.trace, "returned", ctx)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


class Poison(BaseModel):
    trace: str | None = None


@handler("chaos_poison", payload=Poison, max_attempts=20)
def chaos_poison(payload: Poison, ctx: JobContext) -> None:
    """SIGKILL the worker process that runs it, on every attempt."""
    trace(payload.trace, "started", ctx)
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def conveyor_handlers() -> list[Any]:
    return [chaos_effect, chaos_poison]
