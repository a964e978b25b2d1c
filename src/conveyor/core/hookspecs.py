"""Every hook a Conveyor plugin can implement (pluggy project and entry-point group `conveyor`).

Lifecycle hooks are called in the process where the event happens: `submitted` in the
submitter, the others in the worker. They must be quick; they run on the hot path.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "conveyor"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def conveyor_handlers() -> list[Any]:
    """Return the plugin's handlers (objects made by `@conveyor.handler`).

    Called once when the app starts. A job type returned by two plugins is a start-up error.
    """


@hookspec(firstresult=True)
def conveyor_classify_error(error: BaseException, job: Any) -> str | None:
    """Classify a handler's exception: return "retryable", "permanent" or None to pass.

    Called when a handler raised something other than RetryableError/PermanentError. The first
    non-None answer wins; with none, the built-in defaults decide.
    """


@hookspec
def conveyor_datasets() -> dict[str, Any]:
    """Return named datasets for `export_data`: {name: callable(app, params) -> rows}."""


@hookspec
def conveyor_job_submitted(job: Any) -> None:
    """A job's row committed (called after the commit, in the submitting process)."""


@hookspec
def conveyor_job_started(job: Any, attempt: int, worker: str) -> None:
    """A worker claimed the job and is about to run attempt number `attempt`."""


@hookspec
def conveyor_job_finished(job: Any, outcome: str, result: Any, error: str | None) -> None:
    """An attempt ended with `outcome` (an execution outcome name)."""


@hookspec
def conveyor_job_dead(job: Any, error: str | None) -> None:
    """The job reached the dead-letter queue (permanent error or attempts exhausted)."""


@hookspec
def conveyor_worker_started(worker: Any) -> None:
    """A worker started and is about to claim jobs."""


@hookspec
def conveyor_worker_stopping(worker: Any) -> None:
    """A worker stopped claiming and is draining its running jobs."""
