"""JSON responses rendered with orjson (job payloads and results are arbitrary JSON)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBody(Response):
    """A JSON response; orjson is several times faster than the standard library here."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape of the API: {"error": {"code", "message", "details"}}."""
    return {"error": {"code": code, "message": message, "details": details}}
