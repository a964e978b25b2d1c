"""`JobContext`: what a running handler can ask of Conveyor."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from conveyor.core.effects import EffectsLedger, OnUncertain

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor
    from conveyor.core.jobs import Job
    from conveyor.core.store import ClaimedJob


class JobContext:
    """Handed to every handler with its payload; one per attempt."""

    __slots__ = (
        "_ledger",
        "_progress",
        "app",
        "attempt",
        "batch_id",
        "cancel_reason",
        "job_id",
        "max_attempts",
        "progress_dirty",
        "queue",
        "tenant",
        "type",
        "worker_id",
    )

    def __init__(self, app: Conveyor, claimed: ClaimedJob, worker_id: str) -> None:
        self.app = app
        self.job_id = claimed.id
        self.type = claimed.type
        self.queue = claimed.queue
        self.attempt = claimed.attempts
        self.max_attempts = claimed.max_attempts
        self.tenant = claimed.tenant or None
        self.batch_id = claimed.batch_id
        self.worker_id = worker_id
        # Set once, read by the handler's thread: a plain attribute is enough (and one
        # threading.Event per job costs more than the rest of this constructor).
        self.cancel_reason: str | None = None
        self._ledger: EffectsLedger | None = None
        self._progress: dict[str, Any] | None = None
        self.progress_dirty = False

    @property
    def ledger(self) -> EffectsLedger:
        if self._ledger is None:
            self._ledger = EffectsLedger(self.app.store, self.job_id, self.attempt)
        return self._ledger

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"conveyor.job.{self.type}")

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or timed out; long handlers should check it."""
        return self.cancel_reason is not None

    def cancel(self, reason: str = "user") -> None:
        """Ask the handler to stop: "user" (cancelled), "timeout", "lease" or "shutdown"."""
        if self.cancel_reason is None:
            self.cancel_reason = reason

    def once(self, key: str, on_uncertain: OnUncertain = "skip") -> AbstractContextManager[bool]:
        """Run a side effect at most once across every attempt of every job (see CONTRACT)."""
        return self.ledger.once(key, on_uncertain)

    @property
    def uncertain_effects(self) -> list[str]:
        return [] if self._ledger is None else list(self._ledger.uncertain)

    def progress(self, done: float, total: float | None = None, **extra: Any) -> None:
        """Report progress; written with the next heartbeat (not a write per call)."""
        self._progress = {"done": done, "total": total, "at": time.time(), **extra}
        self.progress_dirty = True

    @property
    def current_progress(self) -> dict[str, Any] | None:
        return self._progress

    def submit(self, type_: str, payload: dict[str, Any], **options: Any) -> Job:
        """Submit a follow-up job (inherits this job's tenant unless given)."""
        options.setdefault("tenant", self.tenant)
        return self.app.submit(type_, payload, **options)

    def submit_many(self, jobs: list[dict[str, Any]], **batch: Any) -> list[Job]:
        for job in jobs:
            job.setdefault("tenant", self.tenant)
        return self.app.submit_many(jobs, **batch)

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - guards against misuse
        raise TypeError("JobContext is not iterable")
