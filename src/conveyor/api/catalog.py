"""/handlers and /batches: what can run, and how a batch is doing."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

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
async def list_handlers(
    request: Request,
    principal: Principal = Depends(require("read")),
    app: Conveyor = Depends(conveyor_app),
) -> JSONBody:
    """Every job type: description, payload JSON Schema, queue, priority, max_attempts,
    timeout, rate limit and the plugin that registered it (as `conveyor handlers --json`)."""
    # The registry is fixed once the app is built, and JSON Schema generation is slow.
    described = getattr(request.app.state, "handlers", None)
    if described is None:
        described = request.app.state.handlers = [h.describe() for h in app.registry]
    return JSONBody(described)


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
