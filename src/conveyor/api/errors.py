"""How failures become HTTP answers, all in the shape {"error": {"code", "message", "details"}}.

The engine raises its own errors (`SubmitError` and children, `JobNotFound`,
`InvalidTransition`, `StoreUnavailable`); this module is the one place that maps them to status
codes, so a route never builds an error response by hand.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from conveyor.api.responses import JSONBody, error_body
from conveyor.core.errors import (
    BrokerUnavailable,
    ConveyorError,
    InvalidTransition,
    JobNotFound,
    RateLimited,
    StoreUnavailable,
    SubmitError,
)
from conveyor.core.store.tokens import TokenNotFound

log = logging.getLogger("conveyor.api")

#: Codes for Starlette's own HTTP errors (unknown route, wrong method).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An answer other than success, raised from a route or a dependency."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONBody:
    return JSONBody(error_body(code, message, details), status_code=status, headers=headers)


def _api_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _submit_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, SubmitError)
    if isinstance(exc, RateLimited):
        seconds = str(max(1, math.ceil(exc.retry_after)))
        return error_response(429, exc.code, exc.message, exc.details, {"Retry-After": seconds})
    return error_response(422, exc.code, exc.message, jsonable_encoder(exc.details))


def _conveyor_error(request: Request, exc: Exception) -> JSONBody:
    status, code = 500, "internal_error"
    if isinstance(exc, JobNotFound | TokenNotFound):
        status, code = 404, "not_found"
    elif isinstance(exc, InvalidTransition):
        status, code = 409, "conflict"
    elif isinstance(exc, StoreUnavailable | BrokerUnavailable):
        status, code = 503, getattr(exc, "code", "unavailable")
    if status == 500:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    message = getattr(exc, "message", None) or str(exc)
    return error_response(status, code, message, headers=_retry_soon(status))


def _database_error(request: Request, exc: Exception) -> JSONBody:
    # A connection lost mid-request: nothing was committed, so the client may retry.
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    message = f"the database is unreachable: {reason[0] if reason else type(exc).__name__}"
    return error_response(503, "store_unavailable", message, headers=_retry_soon(503))


def _validation_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)


def _http_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers)


def _unexpected(request: Request, exc: Exception) -> JSONBody:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has details")


def _retry_soon(status: int) -> dict[str, str] | None:
    return {"Retry-After": "5"} if status == 503 else None


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(SubmitError, _submit_error)
    api.add_exception_handler(ConveyorError, _conveyor_error)
    api.add_exception_handler(OperationalError, _database_error)
    api.add_exception_handler(InterfaceError, _database_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(Exception, _unexpected)
