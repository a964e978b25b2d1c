"""Request bodies: read with a size limit, parsed as JSON, shaped into submissions."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from conveyor.api.errors import ApiError
from conveyor.core.errors import InvalidOption
from conveyor.core.options import SUBMIT_OPTIONS

#: POST /jobs: one job's body.
JOB_BODY_LIMIT = 256 * 1024
#: POST /jobs/bulk: many jobs in one body.
BULK_BODY_LIMIT = 16 * 1024 * 1024
#: Jobs per bulk request (they are written in one transaction).
BULK_MAX_JOBS = 10_000
#: Options a REST caller may give (batches are made by the bulk endpoint, not named).
REST_OPTIONS = SUBMIT_OPTIONS - {"batch_id"}


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; 413 past `limit` bytes (checked before reading when announced)."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request needs a JSON body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the body is over {limit // 1024} KiB; store large inputs in blob storage and "
        "pass their URL in the payload",
        {"limit_bytes": limit},
    )


def submission(item: Any, where: str = "body") -> tuple[str, Any, dict[str, Any]]:
    """(type, payload, options) from {"type", "payload", "options"}; options may also sit at
    the top level, as in `Conveyor.submit_many`."""
    if not isinstance(item, dict):
        raise ApiError(422, "invalid_request", f"{where} must be a JSON object")
    type_ = item.get("type")
    if not isinstance(type_, str) or not type_:
        raise ApiError(422, "invalid_request", f"{where}.type is required (a job type name)")
    payload = item.get("payload")
    payload = {} if payload is None else payload
    nested = item.get("options")
    if nested is not None and not isinstance(nested, dict):
        raise ApiError(422, "invalid_option", f"{where}.options must be a JSON object")
    options = {k: v for k, v in item.items() if k not in ("type", "payload", "options")}
    options.update(nested or {})
    unknown = set(options) - REST_OPTIONS
    if unknown:
        raise InvalidOption(
            f"{where}: unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(REST_OPTIONS))})"
        )
    return type_, payload, options
