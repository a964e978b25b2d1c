"""The blob storage interface: public methods check keys and content types once; backends
implement only the small `_primitives` (one module each: `s3.py`, `file.py`)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, ClassVar

from conveyor.storage.content_types import (
    ALLOWED_CONTENT_TYPES,
    check_content_type,
    guess_content_type,
)
from conveyor.storage.errors import BlobTooLarge, InvalidBlobKey

#: What `put` accepts: the bytes themselves, a readable binary file object, or a local path.
Data = bytes | bytearray | memoryview | IO[bytes] | os.PathLike[str]

#: S3's own limit on a key's length, applied everywhere so keys stay portable.
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored object: its key (relative to the storage root), full URL, size, type."""

    key: str
    url: str
    size: int
    content_type: str


def check_key(key: str) -> str:
    """The key unchanged if it is safe; raises InvalidBlobKey otherwise.

    Refused: empty keys, a leading `/`, `..` or `.` as a path segment, empty segments,
    backslashes, NUL and other control characters, and keys over 1024 bytes. The rules are the
    same on every backend, so a key that works on `file://` works on S3 and the reverse.
    """
    if not isinstance(key, str) or not key:
        raise InvalidBlobKey("a blob key must be non-empty text")
    if key.startswith("/"):
        raise InvalidBlobKey(f"blob key {key!r} must not start with '/'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidBlobKey(f"blob key {key!r} contains NUL or another control character")
    if "\\" in key:
        raise InvalidBlobKey(f"blob key {key!r} must not contain a backslash")
    segments = key.split("/")
    if any(segment in ("..", ".") for segment in segments):
        raise InvalidBlobKey(f"blob key {key!r} must not contain '..' or '.' segments")
    if "" in segments[:-1]:
        raise InvalidBlobKey(f"blob key {key!r} must not contain empty segments ('//')")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidBlobKey(f"blob key is {len(key.encode())} bytes; the limit is 1024")
    return key


class Storage(ABC):
    """Objects under one root URL (`s3://bucket/prefix` or `file://dir`), addressed by key."""

    #: URL scheme the backend serves.
    scheme: ClassVar[str]

    def __init__(self, prefix: str = "", allowed_content_types: frozenset[str] | None = None):
        prefix = prefix.strip("/")
        self.prefix = check_key(prefix) if prefix else ""
        self.allowed_content_types = allowed_content_types or ALLOWED_CONTENT_TYPES

    # --- the interface -------------------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The root URL this storage was opened with (normalised)."""

    def put(self, key: str, data: Data, content_type: str | None = None) -> BlobInfo:
        """Store `data` at `key` (replacing any object there) and describe what was stored.

        Without `content_type` it is guessed from the key's extension; either way it must be
        on the allow-list. Large files go up in parts where the backend supports it.
        """
        path = self._path(key)
        kind = check_content_type(
            content_type or guess_content_type(key), self.allowed_content_types
        )
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        size = self._put(path, data, kind)
        return BlobInfo(key=key, url=self._url(path), size=size, content_type=kind)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; BlobNotFound when absent, BlobTooLarge past `max_bytes`."""
        data = self._get(self._path(key), max_bytes)
        if max_bytes is not None and len(data) > max_bytes:
            raise BlobTooLarge(f"{self.url_for(key)} is larger than {max_bytes} bytes")
        return data

    @contextmanager
    def open(self, key: str) -> Iterator[IO[bytes]]:
        """A readable binary stream of the object, for objects too large to hold in memory."""
        stream = self._open(self._path(key))
        try:
            yield stream
        finally:
            stream.close()

    def stat(self, key: str) -> BlobInfo | None:
        """The object's size and content type, or None when there is no such object."""
        path = self._path(key)
        found = self._stat(path)
        if found is None:
            return None
        size, kind = found
        return BlobInfo(
            key=key, url=self._url(path), size=size, content_type=kind or guess_content_type(key)
        )

    def exists(self, key: str) -> bool:
        """True when an object is stored at `key`."""
        return self._stat(self._path(key)) is not None

    def delete(self, key: str) -> None:
        """Remove the object; removing an absent object is not an error."""
        self._delete(self._path(key))

    def url_for(self, key: str) -> str:
        """The full URL of `key` in this storage (what `parse_blob_url` reads back)."""
        return self._url(self._path(key))

    def close(self) -> None:
        """Release connections or handles; the storage must not be used afterwards."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # --- backend primitives (paths here already include the prefix) ----------------------

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @abstractmethod
    def _put(self, path: str, data: bytes | IO[bytes] | os.PathLike[str], content_type: str) -> int:
        """Store the object; return its size in bytes."""

    @abstractmethod
    def _get(self, path: str, max_bytes: int | None) -> bytes:
        """Read the whole object, stopping early (BlobTooLarge) once past `max_bytes`."""

    @abstractmethod
    def _open(self, path: str) -> IO[bytes]:
        """A readable stream of the object."""

    @abstractmethod
    def _stat(self, path: str) -> tuple[int, str | None] | None:
        """(size, content type or None) for an existing object, else None."""

    @abstractmethod
    def _delete(self, path: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def _url(self, path: str) -> str:
        """The URL naming `path`."""
