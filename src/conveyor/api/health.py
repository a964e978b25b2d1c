"""Liveness, readiness and Prometheus metrics; open to probes and scrapers without a token."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from conveyor import metrics
from conveyor.api import schemas
from conveyor.api.deps import conveyor_app
from conveyor.api.errors import error_response
from conveyor.api.responses import JSONBody
from conveyor.core.engine import Conveyor

router = APIRouter(tags=["operations"])

#: A dependency that has not answered within this long counts as down.
CHECK_TIMEOUT = 3.0


@router.get("/healthz", summary="Liveness")
def healthz() -> JSONBody:
    """200 while the process serves requests; touches neither the database nor the broker."""
    return JSONBody({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    responses={503: {"model": schemas.ErrorBody}},
)
async def readyz(app: Conveyor = Depends(conveyor_app)) -> Response:
    """200 when the database (and the Redis broker, if configured) answer; else 503 with
    each check's result in `details`."""
    checks = dict(
        zip(
            ("database", "broker"),
            await asyncio.gather(_check(_ping_database, app), _check(_ping_broker, app)),
            strict=True,
        )
    )
    if all(result == "ok" for result in checks.values()):
        return JSONBody({"status": "ready", "checks": checks})
    down = ", ".join(name for name, result in checks.items() if result != "ok")
    return error_response(503, "not_ready", f"not ready: {down} unreachable", checks)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def prometheus(app: Conveyor = Depends(conveyor_app)) -> Response:
    """Job counters and durations seen by this process, and queue depth per queue and
    priority read from the store at scrape time (`conveyor_queue_depth`)."""
    body = metrics.install(app).render()
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


async def _check(probe: Any, app: Conveyor) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(probe, app), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except Exception as exc:
        return str(getattr(exc, "message", None) or exc).splitlines()[0] or type(exc).__name__
    return "ok"


def _ping_database(app: Conveyor) -> None:
    app.store.ping()


def _ping_broker(app: Conveyor) -> None:
    # The database broker is the store itself; a Redis broker has its own connection.
    client = getattr(app.broker, "redis", None)
    if client is not None:
        client.ping()
