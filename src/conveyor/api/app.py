"""The FastAPI application over a `Conveyor` object."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from fastapi import FastAPI

from conveyor import metrics
from conveyor.api import catalog, health, jobs, queues
from conveyor.api.auth import Authenticator
from conveyor.api.errors import install_error_handlers
from conveyor.api.openapi import install_openapi
from conveyor.api.tracking import TRACKER

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor

DESCRIPTION = """Submit and inspect Conveyor jobs.

Errors always answer `{"error": {"code", "message", "details"}}`. Authenticate with
`Authorization: Bearer <token>` (scopes `submit`, `read`, `admin`)."""


def create_app(conveyor_app: Conveyor, *, require_auth: bool | None = None) -> FastAPI:
    """The REST API over `conveyor_app` (which the caller keeps and closes).

    `require_auth`: True refuses every call without a valid token; False turns tokens off
    (unless `CONVEYOR_ADMIN_TOKEN` is set); None (the default) requires one as soon as the
    admin token is set or any token exists.
    """
    api = FastAPI(
        title="Conveyor",
        version=_version(),
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI would load its scripts from a CDN; /openapi.json suffices
        redoc_url=None,
    )
    api.state.conveyor = conveyor_app
    api.state.authenticator = Authenticator(conveyor_app, required=require_auth)
    # Both before any worker in this process is built: it decides once whether to call hooks.
    conveyor_app.plugins.register(TRACKER, name="conveyor.api.tracking")
    metrics.install(conveyor_app)
    install_error_handlers(api)
    for module in (jobs, queues, catalog, health):
        api.include_router(module.router)
    install_openapi(api)
    return api


def _version() -> str:
    try:
        return metadata.version("conveyor")
    except metadata.PackageNotFoundError:
        return "0"
