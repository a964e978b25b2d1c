"""Conveyor: a durable job-processing framework.

    import conveyor
    app = conveyor.Conveyor.from_env()
    job = app.submit("send_email", {...})
"""

from conveyor.core.context import JobContext
from conveyor.core.engine import Conveyor
from conveyor.core.errors import (
    ConveyorError,
    InvalidOption,
    InvalidPayload,
    JobCancelled,
    PermanentError,
    RetryableError,
    SubmitError,
    Throttled,
    UnknownJobType,
)
from conveyor.core.hookspecs import hookimpl
from conveyor.core.jobs import Job, Priority, Status
from conveyor.core.registry import Handler, handler

__all__ = [
    "Conveyor",
    "ConveyorError",
    "Handler",
    "InvalidOption",
    "InvalidPayload",
    "Job",
    "JobCancelled",
    "JobContext",
    "PermanentError",
    "Priority",
    "RetryableError",
    "Status",
    "SubmitError",
    "Throttled",
    "UnknownJobType",
    "handler",
    "hookimpl",
]
