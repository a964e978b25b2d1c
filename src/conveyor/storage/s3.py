"""`s3://bucket/prefix`: objects in S3 or anything speaking its protocol (MinIO, moto).

Endpoint, region and credentials come from boto3's own configuration (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, profiles, instance roles...), so Conveyor adds no S3 settings of its own.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from conveyor.storage.base import Storage
from conveyor.storage.errors import (
    BlobForbidden,
    BlobNotFound,
    BlobTooLarge,
    InvalidBlobUrl,
    StorageError,
    StorageRejected,
    StorageUnavailable,
)

#: Objects from this size go up in parallel parts (and so can exceed put_object's 5 GiB).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_FORBIDDEN = frozenset(
    {
        "AccessDenied",
        "Forbidden",
        "403",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "InvalidToken",
        "ExpiredToken",
    }
)
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
        "OperationAborted",
    }
)

_CREDENTIALS_MISSING = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)

# boto3 clients are thread-safe but slow to build (tens of ms): share one per configuration.
# The key holds what boto3 reads from the environment, so a changed endpoint gets a new client.
_CONFIG_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()


def s3_client() -> Any:
    """A boto3 S3 client for the current environment (shared, thread-safe)."""
    key = tuple(os.environ.get(name) for name in _CONFIG_ENV)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            retries: dict[str, Any] = {}
            if not os.environ.get("AWS_RETRY_MODE"):
                retries["mode"] = "standard"  # fewer, better-classified retries than "legacy"
            config = Config(retries=retries, max_pool_connections=32)
            client = boto3.session.Session().client("s3", config=config)
            _clients[key] = client
        return client


class S3Storage(Storage):
    """Objects in one bucket, under an optional key prefix."""

    scheme = "s3"

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, **options: Any):
        super().__init__(prefix, **options)
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise InvalidBlobUrl(f"{bucket!r} is not a valid S3 bucket name")
        self.bucket = bucket
        self._client = client
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=4,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _put(self, path: str, data: bytes | IO[bytes] | os.PathLike[str], content_type: str) -> int:
        extra = {"ContentType": content_type}
        with _translated(self._url(path)):
            if isinstance(data, bytes) and len(data) < MULTIPART_THRESHOLD:
                self.client.put_object(Bucket=self.bucket, Key=path, Body=data, **extra)
                return len(data)
            if isinstance(data, bytes):
                data = io.BytesIO(data)
            if isinstance(data, os.PathLike):
                size = os.path.getsize(data)
                self.client.upload_file(
                    os.fspath(data), self.bucket, path, ExtraArgs=extra, Config=self.transfer
                )
                return size
            known = _remaining(data)
            self.client.upload_fileobj(
                data, self.bucket, path, ExtraArgs=extra, Config=self.transfer
            )
            if known is not None:
                return known
            return int(self.client.head_object(Bucket=self.bucket, Key=path)["ContentLength"])

    def _get(self, path: str, max_bytes: int | None) -> bytes:
        with _translated(self._url(path)):
            answer = self.client.get_object(Bucket=self.bucket, Key=path)
            body = answer["Body"]
            try:
                if max_bytes is not None and int(answer.get("ContentLength", 0)) > max_bytes:
                    raise BlobTooLarge(f"{self._url(path)} is larger than {max_bytes} bytes")
                data: bytes = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        if max_bytes is not None and len(data) > max_bytes:
            raise BlobTooLarge(f"{self._url(path)} is larger than {max_bytes} bytes")
        return data

    def _open(self, path: str) -> IO[bytes]:
        with _translated(self._url(path)):
            body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=path)["Body"]
            return body

    def _stat(self, path: str) -> tuple[int, str | None] | None:
        try:
            with _translated(self._url(path)):
                head = self.client.head_object(Bucket=self.bucket, Key=path)
        except BlobNotFound:
            return None
        return int(head["ContentLength"]), head.get("ContentType")

    def _delete(self, path: str) -> None:
        with _translated(self._url(path)):
            self.client.delete_object(Bucket=self.bucket, Key=path)

    def _url(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"


def _remaining(stream: IO[bytes]) -> int | None:
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return end - here
    except (OSError, AttributeError):
        return None


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Turn botocore's exceptions into classified storage errors naming the URL."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        mapped = translate_error(exc, url)
        if mapped is None:
            raise
        raise mapped from exc


def translate_error(exc: BaseException, url: str) -> StorageError | None:
    """The storage error an S3 failure means, or None when it is not an S3 failure."""
    seen: BaseException | None = exc
    while seen is not None:  # boto3 wraps a transfer's ClientError in S3UploadFailedError
        if isinstance(seen, ClientError):
            return _from_client_error(seen, url)
        if isinstance(seen, _CREDENTIALS_MISSING):
            return BlobForbidden(
                f"no usable S3 credentials for {url} ({seen}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, a profile or an instance role"
            )
        if isinstance(seen, ConnectionError | HTTPClientError):
            return StorageUnavailable(f"cannot reach S3 for {url}: {seen}")
        if isinstance(seen, BotoCoreError):
            return StorageRejected(f"S3 request for {url} failed: {seen}")
        seen = seen.__cause__ or seen.__context__
    return None


def _from_client_error(exc: ClientError, url: str) -> StorageError:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code", ""))
    status = int(meta.get("HTTPStatusCode") or 0)
    message = error.get("Message") or code or f"HTTP {status}"
    if code in _NOT_FOUND or status == 404:
        return BlobNotFound(f"no object at {url} ({code or 404})")
    if code in _TRANSIENT or status >= 500 or status in (408, 429):
        headers = meta.get("HTTPHeaders") or {}
        return StorageUnavailable(
            f"S3 is unavailable for {url}: {code} {message}".strip(),
            retry_after=_seconds(headers.get("retry-after")),
        )
    if code in _FORBIDDEN or status in (401, 403):
        return BlobForbidden(f"S3 refused access to {url}: {code} {message}".strip())
    return StorageRejected(f"S3 rejected the request for {url}: {code} {message}".strip())


def _seconds(raw: Any) -> float | None:
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None
