"""Submission options: parsed and checked before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.core.errors import InvalidOption
from conveyor.core.jobs import new_job_id
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
        return float(value.timestamp())
    raise InvalidOption(f"run_at must be ISO 8601 text or a datetime, not {type(value).__name__}")


def _positive(name: str, value: Any, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        wanted = "a positive integer" if integer else "a positive number"
        raise InvalidOption(f"{name} must be {wanted}, got {value!r}")
    return value


PRIORITIES = {"high": 0, "medium": 1, "low": 2, 0: 0, 1: 1, 2: 2}


def build_spec(handler: Handler, payload: dict[str, Any], options: dict[str, Any]) -> JobSpec:
    """A JobSpec from a validated payload and the caller's options (handler defaults fill in).

    This runs once per submitted job, so the common case (few options) stays cheap."""
    opts = {k: v for k, v in options.items() if v is not None} if options else options
    if opts and not opts.keys() <= SUBMIT_OPTIONS:
        unknown = set(opts) - SUBMIT_OPTIONS
        raise InvalidOption(
            f"unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(SUBMIT_OPTIONS - {'batch_id'}))})"
        )
    spec = JobSpec(
        id=new_job_id(),
        type=handler.type,
        queue=handler.queue,
        priority=int(handler.priority),
        payload=orjson.dumps(payload).decode(),
        max_attempts=handler.max_attempts,
        timeout=handler.timeout,
        payload_obj=payload,
    )
    if opts:
        _apply_options(spec, opts)
    return spec


def _apply_options(spec: JobSpec, opts: dict[str, Any]) -> None:
    if "priority" in opts:
        priority = opts["priority"]
        key = priority.lower() if isinstance(priority, str) else priority
        if key not in PRIORITIES or isinstance(priority, bool):
            raise InvalidOption(f"unknown priority {priority!r} (use high, medium or low)")
        spec.priority = PRIORITIES[key]
    if "delay" in opts and "run_at" in opts:
        raise InvalidOption("give delay or run_at, not both")
    if "delay" in opts:
        if opts["delay"] != 0:
            spec.run_at = spec.created_at + float(_positive("delay", opts["delay"]))
    elif "run_at" in opts:
        spec.run_at = parse_run_at(opts["run_at"])
    if "max_attempts" in opts:
        spec.max_attempts = _positive("max_attempts", opts["max_attempts"], True)
    if "timeout" in opts:
        spec.timeout = float(_positive("timeout", opts["timeout"]))
    if "idempotency_key" in opts:
        key = opts["idempotency_key"]
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise InvalidOption("idempotency_key must be text of 1 to 255 characters")
        spec.idempotency_key = key
    if "tenant" in opts:
        tenant = opts["tenant"]
        if not isinstance(tenant, str) or len(tenant) > 200:
            raise InvalidOption("tenant must be text of at most 200 characters")
        spec.tenant = tenant
    if "depends_on" in opts:
        depends_on = opts["depends_on"]
        if isinstance(depends_on, str):
            depends_on = [d for d in depends_on.split(",") if d]
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise InvalidOption("depends_on must be a list of job ids")
        spec.depends_on = list(dict.fromkeys(depends_on))
    if "queue" in opts:
        queue = opts["queue"]
        if not isinstance(queue, str) or not queue or len(queue) > 200:
            raise InvalidOption("queue must be a non-empty name of at most 200 characters")
        spec.queue = queue
    if "batch_id" in opts:
        spec.batch_id = opts["batch_id"]
