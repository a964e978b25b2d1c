"""The OpenAPI document, including the bodies of routes that read their body themselves
(the submit routes do, to refuse an oversized body before reading all of it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from conveyor.api import schemas

#: Models that only requestBody references name, so FastAPI does not see them by itself.
BODY_MODELS = (schemas.SubmitRequest, schemas.BulkRequest)
REF = "#/components/schemas/{model}"


def body_doc(model: type[Any]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(api: FastAPI) -> None:
    """Replace `api.openapi` with one that also carries the body models."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
            )
            _, definitions = models_json_schema(
                [(model, "validation") for model in BODY_MODELS], ref_template=REF
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in definitions.get("$defs", {}).items():
                components.setdefault(name, schema)
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
