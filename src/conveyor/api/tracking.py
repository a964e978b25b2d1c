"""Telling a new job from an idempotent repeat, for the 202-versus-200 answer.

`Conveyor.submit` returns the existing job on a repeat; the `conveyor_job_submitted` hook
fires only for rows this call wrote. A context variable scopes what the hook sees to the one
request, and the hook runs in the submitting thread, so concurrent requests never mix.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from conveyor.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor
    from conveyor.core.jobs import Job

_written: ContextVar[set[str] | None] = ContextVar("conveyor_api_written", default=None)


class SubmissionTracker:
    """A plugin object: records the ids of jobs written while a tracked submit runs."""

    @hookimpl
    def conveyor_job_submitted(self, job: Any) -> None:
        written = _written.get()
        if written is not None:
            written.add(job.id)


TRACKER = SubmissionTracker()


def submit_tracked(
    app: Conveyor, type_: str, payload: Any, options: dict[str, Any]
) -> tuple[Job, bool]:
    """Submit one job; returns it and whether this call wrote it (False: a repeat)."""
    written: set[str] = set()
    token = _written.set(written)
    try:
        job = app.submit(type_, payload, **options)
    finally:
        _written.reset(token)
    return job, job.id in written
