"""One contract suite for blob storage, run against every backend: `file://` on a temp
directory and `s3://` on moto's real HTTP S3 server. Then what only S3 does: multipart
uploads, content types kept, and botocore failures mapped to classified errors."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from conveyor import PermanentError, RetryableError
from conveyor.storage import (
    BlobForbidden,
    BlobNotFound,
    BlobTooLarge,
    InvalidBlobKey,
    Storage,
    StorageRejected,
    StorageUnavailable,
    UnsupportedContentType,
    open_storage,
    parse_blob_url,
)
from conveyor.storage.s3 import MULTIPART_THRESHOLD


class StorageContract:
    """Behaviour every backend shares. Subclasses provide the `storage` fixture."""

    def test_put_then_get_stat_exists(self, storage: Storage) -> None:
        info = storage.put("photos/cat.jpg", b"\xff\xd8 not really a jpeg")
        assert info.key == "photos/cat.jpg"
        assert info.size == 20
        assert info.content_type == "image/jpeg"
        assert info.url == storage.url_for("photos/cat.jpg")
        assert storage.get("photos/cat.jpg") == b"\xff\xd8 not really a jpeg"
        assert storage.exists("photos/cat.jpg")
        stat = storage.stat("photos/cat.jpg")
        assert stat is not None and stat.size == 20 and stat.content_type == "image/jpeg"

    def test_put_replaces(self, storage: Storage) -> None:
        storage.put("a.txt", b"first")
        storage.put("a.txt", b"second")
        assert storage.get("a.txt") == b"second"

    def test_missing_object(self, storage: Storage) -> None:
        assert not storage.exists("nope.png")
        assert storage.stat("nope.png") is None
        with pytest.raises(BlobNotFound) as caught:
            storage.get("nope.png")
        assert isinstance(caught.value, PermanentError)
        storage.delete("nope.png")  # deleting nothing is fine

    def test_delete(self, storage: Storage) -> None:
        storage.put("gone.csv", b"a,b\n")
        storage.delete("gone.csv")
        assert not storage.exists("gone.csv")

    def test_put_from_file_object_and_path(self, storage: Storage, tmp_path: Path) -> None:
        stream = io.BytesIO(b"0123456789")
        stream.seek(2)
        assert storage.put("stream.bin", stream).size == 8
        assert storage.get("stream.bin") == b"23456789"
        local = tmp_path / "local.csv"
        local.write_bytes(b"x,y\n1,2\n")
        info = storage.put("from-path.csv", local)
        assert info.size == 8 and info.content_type == "text/csv"
        assert storage.get("from-path.csv") == b"x,y\n1,2\n"

    def test_open_streams(self, storage: Storage) -> None:
        storage.put("big.bin", b"z" * 100_000)
        with storage.open("big.bin") as stream:
            assert stream.read(10) == b"z" * 10
            assert len(stream.read()) == 99_990

    def test_max_bytes(self, storage: Storage) -> None:
        storage.put("ten.bin", b"0123456789")
        assert storage.get("ten.bin", max_bytes=10) == b"0123456789"
        with pytest.raises(BlobTooLarge):
            storage.get("ten.bin", max_bytes=9)

    @pytest.mark.parametrize(
        "key", ["../escape.jpg", "a/../../b.jpg", "/abs.jpg", "nul\x00.jpg", "a//b.jpg", "a\\b"]
    )
    def test_unsafe_keys_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(InvalidBlobKey):
            storage.put(key, b"x")
        with pytest.raises(InvalidBlobKey):
            storage.get(key)

    @pytest.mark.parametrize("content_type", ["text/html", "image/svg+xml", "application/x-sh"])
    def test_content_type_allow_list(self, storage: Storage, content_type: str) -> None:
        with pytest.raises(UnsupportedContentType):
            storage.put("page.bin", b"<script>", content_type)
        assert not storage.exists("page.bin")

    def test_url_round_trip(self, storage: Storage) -> None:
        info = storage.put("deep/er/key.json", b"{}")
        root, key = parse_blob_url(
            info.url, within=storage.url if storage.scheme == "file" else None
        )
        again = open_storage(root)
        assert again.get(key) == b"{}"


class TestFileStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return open_storage(f"file://{tmp_path / 'blobs'}")


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, bucket: str) -> Storage:
        return open_storage(f"s3://{bucket}/some/prefix")

    def test_objects_land_under_prefix_with_content_type(
        self, storage: Storage, s3: Any, bucket: str
    ) -> None:
        storage.put("x/y.webp", b"RIFF....WEBP")
        head = s3.head_object(Bucket=bucket, Key="some/prefix/x/y.webp")
        assert head["ContentType"] == "image/webp"
        assert storage.url_for("x/y.webp") == f"s3://{bucket}/some/prefix/x/y.webp"

    def test_large_object_goes_up_in_parts(self, storage: Storage, s3: Any, bucket: str) -> None:
        data = bytes(range(256)) * ((MULTIPART_THRESHOLD + 1024 * 1024) // 256)
        info = storage.put("export.csv", data)
        assert info.size == len(data)
        head = s3.head_object(Bucket=bucket, Key="some/prefix/export.csv")
        # A multipart ETag is "<md5 of part md5s>-<number of parts>".
        assert head["ETag"].strip('"').endswith("-2")
        assert head["ContentType"] == "text/csv"
        assert storage.get("export.csv") == data

    def test_missing_bucket_is_not_found(self, s3_env: str) -> None:
        with pytest.raises(BlobNotFound):
            open_storage("s3://no-such-bucket-here").get("a.jpg")


# --- failures through real botocore against a stand-in endpoint -------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected", "retryable"),
    [
        (503, "SlowDown", StorageUnavailable, True),
        (500, "InternalError", StorageUnavailable, True),
        (429, "TooManyRequests", StorageUnavailable, True),
        (403, "AccessDenied", BlobForbidden, False),
        (404, "NoSuchKey", BlobNotFound, False),
        (400, "InvalidArgument", StorageRejected, False),
    ],
)
def test_s3_errors_are_classified(
    faulty_s3: Any, status: int, code: str, expected: type[Exception], retryable: bool
) -> None:
    faulty_s3.status, faulty_s3.code = status, code
    storage = open_storage("s3://some-bucket")
    with pytest.raises(expected) as caught:
        storage.get("photo.jpg")
    assert isinstance(caught.value, RetryableError if retryable else PermanentError)
    assert "s3://some-bucket/photo.jpg" in str(caught.value)
    with pytest.raises(expected):
        storage.put("photo.jpg", b"data")
    assert faulty_s3.hits >= 2


def test_s3_throttling_carries_retry_after(faulty_s3: Any) -> None:
    faulty_s3.status, faulty_s3.code, faulty_s3.retry_after = 503, "SlowDown", "7"
    with pytest.raises(StorageUnavailable) as caught:
        open_storage("s3://some-bucket").put("a.png", b"x")
    assert caught.value.retry_after == 7.0


def test_unreachable_endpoint_is_retryable(unreachable_s3: str) -> None:
    with pytest.raises(StorageUnavailable) as caught:
        open_storage("s3://some-bucket").get("a.jpg")
    assert isinstance(caught.value, RetryableError)
