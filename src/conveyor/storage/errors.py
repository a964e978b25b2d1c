"""Storage errors, already classified for the job engine.

Each one is also a `PermanentError` or a `RetryableError`, so a handler that lets a storage
error escape gets the right verdict without a classification hook of its own.
"""

from __future__ import annotations

from conveyor.core.errors import ConveyorError, PermanentError, RetryableError


class StorageError(ConveyorError):
    """Root of the errors blob storage raises on purpose."""


class InvalidBlobUrl(StorageError, PermanentError):
    """A storage or object URL that cannot be used (unknown scheme, missing bucket, outside
    the allowed directory)."""


class InvalidBlobKey(StorageError, PermanentError):
    """A key that could escape its storage root or is not a valid object name."""


class UnsupportedContentType(StorageError, PermanentError):
    """A content type outside the allow-list."""


class BlobNotFound(StorageError, PermanentError):
    """No object at that key (or no such bucket)."""


class BlobForbidden(StorageError, PermanentError):
    """The store refused access: credentials or permissions must change before a retry helps."""


class BlobTooLarge(StorageError, PermanentError):
    """The object is larger than the caller's limit."""


class StorageRejected(StorageError, PermanentError):
    """The store refused the request for a reason retrying cannot fix (other 4xx answers)."""


class StorageUnavailable(StorageError, RetryableError):
    """Throttling, a 5xx answer, a timeout or a lost connection: worth another attempt."""
