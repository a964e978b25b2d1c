"""Submission options: parsed and checked before anything is written."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.core.errors import InvalidOption
from conveyor.core.jobs import Priority, new_job_id
from conveyor.core.registry import Handler
from conveyor.core.store import JobSpec

SUBMIT_OPTIONS = frozenset(
    {
        "queue",
        "priority",
        "delay",
        "run_at",
        "max_attempts",
        "timeout",
        "idempotency_key",
        "tenant",
        "depends_on",
        "batch_id",
    }
)


def parse_run_at(value: Any) -> float:
    """ISO 8601 text, a datetime or epoch seconds -> epoch seconds (naive means UTC)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidOption(f"run_at {value!r} is not an ISO 8601 date and time") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    raise InvalidOption(f"run_at must be ISO 8601 text or a datetime, not {type(value).__name__}")


def _positive(name: str, value: Any, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        wanted = "a positive integer" if integer else "a positive number"
        raise InvalidOption(f"{name} must be {wanted}, got {value!r}")
    return value


def build_spec(handler: Handler, payload: dict[str, Any], options: dict[str, Any]) -> JobSpec:
    """A JobSpec from a validated payload and the caller's options (handler defaults fill in)."""
    unknown = set(options) - SUBMIT_OPTIONS
    if unknown:
        raise InvalidOption(
            f"unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(SUBMIT_OPTIONS - {'batch_id'}))})"
        )
    opts = {k: v for k, v in options.items() if v is not None}
    try:
        priority = Priority.parse(opts.get("priority", handler.priority))
    except ValueError as exc:
        raise InvalidOption(str(exc)) from None
    if "delay" in opts and "run_at" in opts:
        raise InvalidOption("give delay or run_at, not both")
    run_at = None
    if "delay" in opts:
        run_at = time.time() + float(_positive("delay", opts["delay"])) if opts["delay"] else None
    elif "run_at" in opts:
        run_at = parse_run_at(opts["run_at"])
    max_attempts = _positive("max_attempts", opts.get("max_attempts", handler.max_attempts), True)
    timeout = opts.get("timeout", handler.timeout)
    if timeout is not None:
        timeout = float(_positive("timeout", timeout))
    key = opts.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 255):
        raise InvalidOption("idempotency_key must be text of 1 to 255 characters")
    tenant = opts.get("tenant") or ""
    if not isinstance(tenant, str) or len(tenant) > 200:
        raise InvalidOption("tenant must be text of at most 200 characters")
    depends_on = opts.get("depends_on") or []
    if isinstance(depends_on, str):
        depends_on = [d for d in depends_on.split(",") if d]
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise InvalidOption("depends_on must be a list of job ids")
    queue = opts.get("queue", handler.queue)
    if not isinstance(queue, str) or not queue or len(queue) > 200:
        raise InvalidOption("queue must be a non-empty name of at most 200 characters")
    return JobSpec(
        id=new_job_id(),
        type=handler.type,
        queue=queue,
        priority=int(priority),
        payload=orjson.dumps(payload).decode(),
        max_attempts=max_attempts,
        run_at=run_at,
        timeout=timeout,
        tenant=tenant,
        idempotency_key=key,
        depends_on=list(dict.fromkeys(depends_on)),
        batch_id=opts.get("batch_id"),
    )
