"""Blob storage behind URLs (`s3://bucket/prefix` via boto3, `file://dir`), shared by the
built-in workloads that write files (image resizing, exports).

    storage = open_storage("s3://media/thumbs")
    info = storage.put("cat/small.jpg", data)        # content type from the extension
    storage.get("cat/small.jpg"); storage.exists(...); storage.url_for(...)
    root, key = parse_blob_url("s3://media/thumbs/cat/small.jpg")
"""

from __future__ import annotations

from conveyor.storage.base import BlobInfo, Storage, check_key
from conveyor.storage.content_types import (
    ALLOWED_CONTENT_TYPES,
    check_content_type,
    guess_content_type,
)
from conveyor.storage.errors import (
    BlobForbidden,
    BlobNotFound,
    BlobTooLarge,
    InvalidBlobKey,
    InvalidBlobUrl,
    StorageError,
    StorageRejected,
    StorageUnavailable,
    UnsupportedContentType,
)
from conveyor.storage.urls import file_path, open_storage, parse_blob_url

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "BlobForbidden",
    "BlobInfo",
    "BlobNotFound",
    "BlobTooLarge",
    "InvalidBlobKey",
    "InvalidBlobUrl",
    "Storage",
    "StorageError",
    "StorageRejected",
    "StorageUnavailable",
    "UnsupportedContentType",
    "check_content_type",
    "check_key",
    "file_path",
    "guess_content_type",
    "open_storage",
    "parse_blob_url",
]
