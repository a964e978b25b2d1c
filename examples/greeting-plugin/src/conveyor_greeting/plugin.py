"""The `greet` job type: a typed payload, a side effect recorded in the effects ledger, and
the hook that registers it. Copy this file to start a plugin of your own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import conveyor


class Greet(BaseModel):
    """What a `greet` job carries; Conveyor validates it when the job is submitted."""

    name: str = Field(min_length=1, max_length=100)
    greeting: str = "Hello"
    guestbook: str | None = None  # a file each guest signs once


@conveyor.handler("greet", payload=Greet, queue="default", max_attempts=3, timeout=30)
def greet(payload: Greet, ctx: conveyor.JobContext) -> dict[str, Any]:
    """Greet someone, signing the guestbook once per guest however often the job runs."""
    message = f"{payload.greeting}, {payload.name}!"
    signed = False
    if payload.guestbook:
        # The ledger key names the effect, not the attempt: a retry, a rescued crash or a
        # second job for the same guest finds it done and skips the write.
        with ctx.once(f"greeting:{payload.name}") as first:
            if first:
                with Path(payload.guestbook).open("a", encoding="utf-8") as book:
                    book.write(message + "\n")
                signed = True
    ctx.logger.info("greeted %s (attempt %d)", payload.name, ctx.attempt)
    return {"greeted": payload.name, "message": message, "signed": signed}


@conveyor.hookimpl
def conveyor_handlers() -> list[conveyor.Handler]:
    return [greet]
