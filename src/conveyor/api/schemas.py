"""Shapes for the OpenAPI document. Routes return plain dicts rendered by orjson; these models
describe them (and the request bodies) without validating every response at run time."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["high", "medium", "low"]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unknown_job_type"])
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None = None
    priority: Priority | None = None
    delay: float | None = Field(None, description="Seconds from now.")
    run_at: str | None = Field(None, description="ISO 8601 date and time.")
    max_attempts: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, description="Seconds per attempt.")
    idempotency_key: str | None = Field(
        None, description="Unique per tenant: a repeat returns the existing job."
    )
    tenant: str | None = None
    depends_on: list[str] | None = Field(None, description="Job ids this job waits for.")


class SubmitRequest(BaseModel):
    type: str = Field(examples=["send_email"])
    payload: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions | None = None


class BulkRequest(BaseModel):
    jobs: list[SubmitRequest] = Field(max_length=10_000)
    batch_kind: str | None = Field(
        None, description="Makes the jobs one batch whose progress GET /batches/{id} reports."
    )
    batch_meta: dict[str, Any] | None = None


class BulkAccepted(BaseModel):
    ids: list[str]
    batch_id: str | None = None


class Execution(BaseModel):
    attempt: int
    worker: str | None
    started_at: str | None
    finished_at: str | None
    outcome: str
    error_type: str | None
    error: str | None
    duration_ms: float | None


class Job(BaseModel):
    id: str
    type: str
    queue: str
    priority: Priority
    status: Literal[
        "waiting", "scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled"
    ]
    payload: dict[str, Any]
    result: Any = None
    error: str | None = None
    attempts: int
    max_attempts: int
    tenant: str | None
    idempotency_key: str | None
    run_at: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    depends_on: list[str]
    batch_id: str | None
    progress: dict[str, Any] | None
    timeout: float | None
    executions: list[Execution]


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class HandlerInfo(BaseModel):
    type: str
    description: str
    payload_schema: dict[str, Any]
    queue: str
    priority: Priority
    max_attempts: int
    timeout: float | None
    rate_limit: str | None
    plugin: str


class QueueStats(BaseModel):
    ready: dict[Priority, int]
    depth: int
    scheduled: int
    running: int
    waiting: int
    dead: int
    paused: bool
    oldest_wait_seconds: float


class QueueState(BaseModel):
    name: str
    paused: bool


class WorkerInfo(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: int
    started_at: float
    heartbeat_at: float


class BatchProgress(BaseModel):
    id: str
    kind: str
    total: int
    counts: dict[str, int]
    finished: int
    done: bool
    uncertain_effects: list[str]
    meta: dict[str, Any] | None
    created_at: float


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all in the one error shape."""
    return {status: {"model": ErrorBody} for status in statuses}
