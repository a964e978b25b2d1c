"""What crosses the store's boundary: a job to insert, a claimed job, an attempt's outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.core.jobs import Execution, Job, Priority, Status


@dataclass(slots=True)
class JobSpec:
    """A validated job about to be written."""

    id: str
    type: str
    queue: str
    priority: int
    payload: str  # JSON text, already validated
    max_attempts: int
    run_at: float | None = None  # epoch seconds; None means now
    timeout: float | None = None
    tenant: str = ""
    idempotency_key: str | None = None
    depends_on: list[str] = field(default_factory=list)
    batch_id: str | None = None
    created_at: float = field(default_factory=time.time)
    payload_obj: dict[str, Any] = field(default_factory=dict)  # `payload`, decoded


@dataclass(slots=True)
class ClaimedJob:
    """A job this worker holds a lease on (the fence is `lease_token`)."""

    id: str
    type: str
    queue: str
    priority: int
    payload: str
    attempts: int
    max_attempts: int
    timeout: float | None
    lease_token: int
    tenant: str
    batch_id: str | None
    started_at: float
    crash_count: int


@dataclass(slots=True)
class Completion:
    """How an attempt ended, to be written (fenced) with its execution row.

    `attempt_delta` is -1 when the attempt must not count (graceful release, a deferral by a
    limit, an upstream 429); `outcome` None writes no execution row. `throttled` marks an
    attempt an upstream provider refused with 429 (the limiter slows its type down).
    """

    id: str
    lease_token: int
    status: str
    outcome: str | None
    result: str | None = None
    error: str | None = None
    error_type: str | None = None
    delay: float | None = None
    attempt_delta: int = 0
    started_at: float | None = None
    duration_ms: float | None = None
    progress: str | None = None
    throttled: bool = False


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _json(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def job_from_row(row: Any, executions: list[Any] | None = None, now: float = 0.0) -> Job:
    status = row.status
    # A scheduled job whose time has come is queued, whether or not anything moved it yet.
    if status == Status.SCHEDULED and now and row.run_at <= now:
        status = Status.QUEUED.value
    return Job(
        id=row.id,
        type=row.type,
        queue=row.queue,
        priority=str(Priority(row.priority)),
        status=status,
        payload=_json(row.payload),
        result=_json(row.result),
        error=row.error,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        tenant=row.tenant or None,
        idempotency_key=row.idempotency_key,
        run_at=_dt(row.run_at),
        created_at=_dt(row.created_at),
        started_at=_dt(row.started_at),
        finished_at=_dt(row.finished_at),
        depends_on=_json(row.depends_on) or [],
        batch_id=row.batch_id,
        progress=_json(row.progress),
        timeout=row.timeout,
        executions=[execution_from_row(e) for e in executions or []],
    )


def execution_from_row(row: Any) -> Execution:
    return Execution(
        attempt=row.attempt,
        worker=row.worker,
        started_at=_dt(row.started_at),
        finished_at=_dt(row.finished_at),
        outcome=row.outcome,
        error_type=row.error_type,
        error=row.error,
        duration_ms=row.duration_ms,
    )
