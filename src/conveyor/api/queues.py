"""/queues and /workers: depth per priority, pauses, live workers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from conveyor.api import schemas
from conveyor.api.auth import Principal, require, require_operator
from conveyor.api.deps import conveyor_app
from conveyor.api.responses import JSONBody
from conveyor.core.engine import Conveyor

router = APIRouter(tags=["queues"])

QUEUE_NAME = Path(..., min_length=1, max_length=200)


@router.get(
    "/queues",
    summary="Depth per queue and priority",
    responses={
        200: {"model": dict[str, schemas.QueueStats]},
        **schemas.errors(401, 403, 503),
    },
)
def list_queues(
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Per queue name: ready jobs per priority (`ready`, summed in `depth`), scheduled,
    running, waiting, dead, paused, and how long the oldest ready job has waited. Queues that
    a handler serves appear even when empty. The same shape as `conveyor queues --json`."""
    stats = app.store.queue_stats(always={handler.queue for handler in app.registry})
    return JSONBody(dict(sorted(stats.items())))


@router.post(
    "/queues/{name}/pause",
    summary="Pause a queue",
    responses={200: {"model": schemas.QueueState}, **schemas.errors(401, 403, 503)},
)
def pause_queue(
    name: str = QUEUE_NAME,
    principal: Principal = Depends(require_operator),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Workers stop claiming from the queue (running jobs finish); submissions still land."""
    app.store.set_paused(name, True)
    return JSONBody({"name": name, "paused": True})


@router.post(
    "/queues/{name}/resume",
    summary="Resume a paused queue",
    responses={200: {"model": schemas.QueueState}, **schemas.errors(401, 403, 503)},
)
def resume_queue(
    name: str = QUEUE_NAME,
    principal: Principal = Depends(require_operator),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    app.store.set_paused(name, False)
    return JSONBody({"name": name, "paused": False})


@router.get(
    "/workers",
    summary="Live workers",
    responses={200: {"model": list[schemas.WorkerInfo]}, **schemas.errors(401, 403, 503)},
)
def list_workers(
    within: float = Query(60.0, gt=0, le=86_400, description="Heartbeat age in seconds."),
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Workers whose last heartbeat is younger than `within` seconds: host, pid, queues,
    concurrency, running jobs, started_at and heartbeat_at (epoch seconds)."""
    return JSONBody(app.store.live_workers(within))
