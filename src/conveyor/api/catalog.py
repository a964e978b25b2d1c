"""/handlers and /batches: what can run, and how a batch is doing."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from conveyor.api import schemas
from conveyor.api.auth import Principal, require
from conveyor.api.deps import conveyor_app
from conveyor.api.responses import JSONBody
from conveyor.core.engine import Conveyor

router = APIRouter(tags=["catalog"])


@router.get(
    "/handlers",
    summary="Job types",
    responses={200: {"model": list[schemas.HandlerInfo]}, **schemas.errors(401, 403)},
)
def list_handlers(
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Every job type: description, payload JSON Schema, queue, priority, max_attempts,
    timeout, rate limit and the plugin that registered it (as `conveyor handlers --json`)."""
    return JSONBody([handler.describe() for handler in app.registry])


@router.get(
    "/batches/{batch_id}",
    summary="A batch's progress",
    responses={200: {"model": schemas.BatchProgress}, **schemas.errors(401, 403, 404, 503)},
)
def get_batch(
    batch_id: str,
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Counts per status, finished of total, and the uncertain effects of the batch's jobs."""
    return JSONBody(app.batch_progress(batch_id))
