"""The REST API: `create_app(conveyor_app)` returns a FastAPI application."""

from conveyor.api.app import create_app

__all__ = ["create_app"]
