"""Small dependencies shared by the routers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from conveyor.core.engine import Conveyor


async def conveyor_app(request: Request) -> Conveyor:
    """The `Conveyor` this API serves (set by `create_app`). Async: a sync dependency would
    cost a trip through the thread pool for an attribute read."""
    app: Conveyor = request.app.state.conveyor
    return app
