"""The content types blob storage accepts, and the guess from a key's extension.

An allow-list rather than anything goes: objects are often served straight from the bucket,
and an uploaded `text/html` or `image/svg+xml` there is a stored cross-site-scripting hole.
"""

from __future__ import annotations

from conveyor.storage.errors import UnsupportedContentType

OCTET_STREAM = "application/octet-stream"

#: Extension (lower case, without the dot) -> content type. Also the allow-list's source.
BY_EXTENSION: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "txt": "text/plain",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "gz": "application/gzip",
    "parquet": "application/vnd.apache.parquet",
    "eml": "message/rfc822",
    "bin": OCTET_STREAM,
}

ALLOWED_CONTENT_TYPES: frozenset[str] = frozenset(BY_EXTENSION.values())


def guess_content_type(key: str) -> str:
    """The content type a key's extension implies; `application/octet-stream` when unknown."""
    name = key.rsplit("/", 1)[-1]
    if "." not in name:
        return OCTET_STREAM
    return BY_EXTENSION.get(name.rsplit(".", 1)[-1].lower(), OCTET_STREAM)


def check_content_type(content_type: str, allowed: frozenset[str] = ALLOWED_CONTENT_TYPES) -> str:
    """The content type normalised (parameters such as `charset` kept); raises when refused."""
    base, _, params = content_type.partition(";")
    base = base.strip().lower()
    if base not in allowed:
        raise UnsupportedContentType(
            f"content type {base!r} is not allowed (allowed: {', '.join(sorted(allowed))})"
        )
    params = params.strip()
    return f"{base}; {params}" if params else base
