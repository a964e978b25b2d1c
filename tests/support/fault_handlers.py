"""Handlers for fault tests, loaded by subprocess workers through CONVEYOR_PLUGINS.

Each handler records what it did in files the test reads: an effects file (one line per side
effect, written inside `ctx.once`, so a duplicate line is a repeated effect) and a trace file
(one JSON line per attempt event, with the worker's pid).
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
    """Append one line with a single write: lines from several processes never interleave."""
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
            **extra,
        }
        append_line(path, orjson.dumps(record).decode())


class Effect(BaseModel):
    effects: str  # file that receives one line per side effect
    trace: str | None = None
    hold: float = Field(default=0.0, ge=0)  # seconds to sleep after the effect...
    hold_attempts: int = 1  # ...on attempts up to this one...
    release: str | None = None  # ...or until this file exists


@handler("fault_effect", payload=Effect, max_attempts=5)
def fault_effect(payload: Effect, ctx: JobContext) -> dict[str, Any]:
    """Append the job id to a file at most once, then (early attempts) hold the lease.

    The hold ignores cancellation on purpose: it stands for a handler stuck in a call that
    cannot be interrupted, which is what leases and fences exist for.
    """
    trace(payload.trace, "started", ctx)
    with ctx.once(f"effect:{ctx.job_id}") as first:
        if first:
            append_line(payload.effects, ctx.job_id)
    trace(payload.trace, "effect", ctx, first=first)
    if payload.hold and ctx.attempt <= payload.hold_attempts:
        deadline = time.monotonic() + payload.hold
        while time.monotonic() < deadline:
            if payload.release and os.path.exists(payload.release):
                break
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    trace(payload.trace, "returned", ctx)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


class Poison(BaseModel):
    trace: str | None = None


@handler("fault_poison", payload=Poison, max_attempts=10)
def fault_poison(payload: Poison, ctx: JobContext) -> None:
    """Kill the worker process that runs it, on every attempt."""
    trace(payload.trace, "started", ctx)
    os.kill(os.getpid(), signal.SIGKILL)


class Quick(BaseModel):
    trace: str | None = None


@handler("fault_quick", payload=Quick)
def fault_quick(payload: Quick, ctx: JobContext) -> dict[str, Any]:
    """Succeed at once, saying which process ran it."""
    trace(payload.trace, "started", ctx)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@hookimpl
def conveyor_handlers() -> list[Any]:
    return [fault_effect, fault_poison, fault_quick]
