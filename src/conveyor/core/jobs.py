"""The job model: states, priorities, outcomes and the JSON shape users see."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any


class Status(StrEnum):
    WAITING = "waiting"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})
#: States a worker may claim from once `run_at` has passed.
CLAIMABLE = (Status.QUEUED, Status.SCHEDULED, Status.RETRYING)


class Priority(IntEnum):
    """Stored as a small integer so that `ORDER BY priority` serves high first."""

    HIGH = 0
    MEDIUM = 1
    LOW = 2

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown priority {value!r} (use high, medium or low)") from None

    def __str__(self) -> str:
        return self.name.lower()


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYABLE_ERROR = "retryable_error"
    PERMANENT_ERROR = "permanent_error"
    LEASE_EXPIRED = "lease_expired"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


_id_lock = threading.Lock()
_id_state = [0, 0]  # last millisecond, sequence within it


def new_job_id() -> str:
    """A UUIDv7 whose 12-bit sub-millisecond field is a counter (RFC 9562, method 1): ids
    sort by submission, even within one millisecond, and index pages stay hot."""
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, seq = _id_state
        if ms <= last_ms:
            ms, seq = last_ms, seq + 1
            if seq > 0xFFF:
                ms, seq = ms + 1, 0
        else:
            seq = int.from_bytes(os.urandom(1), "big")  # leave room to count up
        _id_state[:] = [ms, seq]
    rand = random.getrandbits(62)  # the module reseeds itself in forked children
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= seq << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


@dataclass(slots=True)
class Execution:
    """One attempt of a job, as the execution log recorded it."""

    attempt: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error_type: str | None = None
    error: str | None = None
    duration_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "worker": self.worker,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outcome": self.outcome,
            "error_type": self.error_type,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass(slots=True)
class Job:
    """A job as users see it; attributes are the Job JSON fields of the contract."""

    id: str
    type: str
    queue: str
    priority: str
    status: str
    payload: dict[str, Any]
    result: Any = None
    error: str | None = None
    attempts: int = 0
    max_attempts: int = 5
    tenant: str | None = None
    idempotency_key: str | None = None
    run_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    depends_on: list[str] = field(default_factory=list)
    batch_id: str | None = None
    progress: dict[str, Any] | None = None
    timeout: float | None = None
    executions: list[Execution] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return Status(self.status).terminal

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "queue": self.queue,
            "priority": self.priority,
            "status": self.status,
            "payload": self.payload,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "tenant": self.tenant,
            "idempotency_key": self.idempotency_key,
            "run_at": iso(self.run_at),
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "depends_on": list(self.depends_on),
            "batch_id": self.batch_id,
            "progress": self.progress,
            "timeout": self.timeout,
            "executions": [e.to_dict() for e in self.executions],
        }
