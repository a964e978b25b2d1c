"""/jobs: submit (one or in bulk), list, get, cancel, retry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from conveyor.api import schemas
from conveyor.api.auth import Principal, require
from conveyor.api.body import (
    BULK_BODY_LIMIT,
    BULK_MAX_JOBS,
    JOB_BODY_LIMIT,
    read_json,
    submission,
)
from conveyor.api.deps import conveyor_app
from conveyor.api.errors import ApiError
from conveyor.api.openapi import body_doc
from conveyor.api.responses import JSONBody
from conveyor.api.tracking import submit_tracked
from conveyor.core.engine import Conveyor
from conveyor.core.errors import InvalidOption, JobNotFound
from conveyor.core.jobs import Job, Status

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_PAGE = 1000


@router.post(
    "",
    status_code=202,
    summary="Submit a job",
    openapi_extra=body_doc(schemas.SubmitRequest),
    responses={
        200: {"model": schemas.Job, "description": "An idempotent repeat: the existing job."},
        202: {"model": schemas.Job, "description": "Accepted: the job's row committed."},
        **schemas.errors(400, 401, 403, 413, 422, 429, 503),
    },
)
async def submit_job(
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(require("submit")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """202 with the job and its `Location` once the row committed; 200 with the existing job
    when the idempotency key (header or option) was used before by this tenant."""
    body = await read_json(request, JOB_BODY_LIMIT)
    type_, payload, options = submission(body)
    if idempotency_key is not None:
        given = options.get("idempotency_key")
        if given is not None and given != idempotency_key:
            raise InvalidOption(
                "the Idempotency-Key header and the idempotency_key option differ; give one"
            )
        options["idempotency_key"] = idempotency_key
    options["tenant"] = principal.tenant_for(options.get("tenant"))
    job, written = await run_in_threadpool(submit_tracked, app, type_, payload, options)
    location = f"{request.scope.get('root_path', '')}/jobs/{job.id}"
    return JSONBody(
        job.to_dict(), status_code=202 if written else 200, headers={"Location": location}
    )


@router.post(
    "/bulk",
    status_code=202,
    summary="Submit many jobs, all or nothing",
    openapi_extra=body_doc(schemas.BulkRequest),
    responses={
        202: {"model": schemas.BulkAccepted},
        **schemas.errors(400, 401, 403, 413, 422, 429, 503),
    },
)
async def submit_bulk(
    request: Request,
    principal: Principal = Depends(require("submit")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Every job is validated before any is written, then all are written in one
    transaction: one invalid job refuses the lot. Ids come back in the order sent."""
    body = await read_json(request, BULK_BODY_LIMIT)
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list) or not body["jobs"]:
        raise ApiError(
            422, "invalid_request", 'the body must be {"jobs": [...]} with one job or more'
        )
    items = body["jobs"]
    if len(items) > BULK_MAX_JOBS:
        raise ApiError(
            422,
            "invalid_request",
            f"at most {BULK_MAX_JOBS} jobs per bulk request, got {len(items)}",
        )
    jobs = []
    for index, item in enumerate(items):
        type_, payload, options = submission(item, where=f"jobs[{index}]")
        options["tenant"] = principal.tenant_for(options.get("tenant"))
        jobs.append({"type": type_, "payload": payload, **options})
    batch_kind = body.get("batch_kind")
    batch_meta = body.get("batch_meta")
    if batch_kind is not None and not isinstance(batch_kind, str):
        raise InvalidOption("batch_kind must be text")
    if batch_meta is not None and not isinstance(batch_meta, dict):
        raise InvalidOption("batch_meta must be a JSON object")
    written = await run_in_threadpool(
        lambda: app.submit_many(jobs, batch_kind=batch_kind or None, batch_meta=batch_meta)
    )
    batch_id = written[0].batch_id if batch_kind and written else None
    return JSONBody({"ids": [job.id for job in written], "batch_id": batch_id}, status_code=202)


@router.get(
    "",
    summary="List jobs, newest first",
    responses={200: {"model": schemas.JobPage}, **schemas.errors(401, 403, 422, 503)},
)
def list_jobs(
    status: Status | None = Query(None),
    type_: str | None = Query(None, alias="type"),
    queue: str | None = Query(None),
    tenant: str | None = Query(None),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """`{"items", "next_cursor"}`; pass `next_cursor` back as `cursor` for the next page."""
    page, next_cursor = app.list_jobs(
        status=status.value if status else None,
        type_=type_,
        queue=queue,
        tenant=principal.tenant_for(tenant),
        limit=limit,
        cursor=cursor,
    )
    return JSONBody({"items": [job.to_dict() for job in page], "next_cursor": next_cursor})


@router.get(
    "/{job_id}",
    summary="One job, with its executions",
    responses={200: {"model": schemas.Job}, **schemas.errors(401, 403, 404, 503)},
)
def get_job(
    job_id: str,
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    return JSONBody(_visible_job(app, principal, job_id).to_dict())


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    responses={
        200: {"model": schemas.Job, "description": "Cancelled."},
        202: {"model": schemas.Job, "description": "Running: cancellation requested."},
        **schemas.errors(401, 403, 404, 409, 503),
    },
)
def cancel_job(
    job_id: str,
    principal: Principal = Depends(require("admin")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """200 once cancelled; 202 for a running job, which is asked to stop (its handler sees
    `ctx.cancelled`); 409 when the job already finished."""
    _visible_job(app, principal, job_id, with_executions=False)
    outcome = app.cancel(job_id)
    job = app.get(job_id)
    return JSONBody(job.to_dict(), status_code=200 if outcome == "cancelled" else 202)


@router.post(
    "/{job_id}/retry",
    status_code=202,
    summary="Queue a dead or cancelled job again",
    responses={202: {"model": schemas.Job}, **schemas.errors(401, 403, 404, 409, 503)},
)
def retry_job(
    job_id: str,
    principal: Principal = Depends(require("admin")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """202 with the job queued again (one more attempt if it had none left); 409 unless the
    job is dead or cancelled."""
    _visible_job(app, principal, job_id, with_executions=False)
    return JSONBody(app.retry(job_id).to_dict(), status_code=202)


def _visible_job(
    app: Conveyor, principal: Principal, job_id: str, with_executions: bool = True
) -> Job:
    """The job, or 404 when it does not exist or belongs to another tenant than the token's
    (a tenant learns nothing about another's ids)."""
    job = app.store.get(job_id, with_executions=with_executions)
    if not principal.sees(job):
        raise JobNotFound(f"no job with id {job_id!r}")
    return job
