"""Storage by URL: `open_storage("s3://bucket/prefix" | "file://dir")` and `parse_blob_url`,
which splits an object's URL into the storage holding it and its key."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote

from conveyor.storage.base import Storage, check_key
from conveyor.storage.errors import InvalidBlobKey, InvalidBlobUrl

SCHEMES = ("s3", "file")


def _split(url: str) -> tuple[str, str]:
    if not isinstance(url, str) or "://" not in url:
        raise InvalidBlobUrl(
            f"{url!r} is not a storage URL (expected s3://bucket/... or file://...)"
        )
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidBlobUrl(
            f"unsupported storage scheme {scheme!r} in {url!r} (supported: {', '.join(SCHEMES)})"
        )
    if "\x00" in rest or "?" in rest or "#" in rest:
        raise InvalidBlobUrl(f"storage URL {url!r} must not carry NUL, a query or a fragment")
    return scheme, rest


def file_path(url: str) -> str:
    """The local path a `file://` URL names: `file://./data` is relative, `file:///srv` absolute."""
    scheme, rest = _split(url)
    if scheme != "file":
        raise InvalidBlobUrl(f"{url!r} is not a file:// URL")
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    path = unquote(rest)
    if not path:
        raise InvalidBlobUrl(f"{url!r} names no directory")
    return path


def open_storage(url: str, **options: Any) -> Storage:
    """The storage rooted at `url`: `s3://bucket[/prefix]` or `file://dir`.

    Options go to the backend (e.g. `allowed_content_types`, or `client` for S3).
    """
    scheme, rest = _split(url)
    if scheme == "file":
        from conveyor.storage.file import FileStorage

        return FileStorage(file_path(url), **options)
    from conveyor.storage.s3 import S3Storage

    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidBlobUrl(f"{url!r} names no bucket")
    try:
        return S3Storage(bucket, unquote(prefix), **options)
    except InvalidBlobKey as exc:
        raise InvalidBlobUrl(f"{url!r}: {exc}") from None


def parse_blob_url(url: str, within: str | None = None) -> tuple[str, str]:
    """Split an object URL into (storage URL, key).

    `s3://bucket/a/b.jpg` -> (`s3://bucket`, `a/b.jpg`). A `file://` URL splits at its
    directory, or, with `within` (a `file://` storage URL), must lie inside that directory
    and splits there: this is how a payload's file URLs are kept inside the configured
    storage instead of roaming the worker's disk. Keys follow `check_key`'s rules.
    """
    scheme, rest = _split(url)
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InvalidBlobUrl(f"{url!r} must name a bucket and a key (s3://bucket/key)")
        return f"s3://{bucket}", _key(unquote(key), url)
    path = file_path(url)
    if ".." in path.replace("\\", "/").split("/"):
        raise InvalidBlobUrl(f"{url!r} must not contain '..' segments")
    if within is None:
        directory, _, name = os.path.abspath(path).rpartition("/")
        return "file://" + (directory or "/"), _key(name, url)
    root = os.path.abspath(file_path(within))
    target = os.path.abspath(path)
    if target == root or os.path.commonpath([root, target]) != root:
        raise InvalidBlobUrl(f"{url!r} is outside the storage directory {root}")
    return "file://" + root, _key(os.path.relpath(target, root).replace(os.sep, "/"), url)


def _key(key: str, url: str) -> str:
    try:
        return check_key(key)
    except InvalidBlobKey as exc:
        raise InvalidBlobUrl(f"{url!r}: {exc}") from None
