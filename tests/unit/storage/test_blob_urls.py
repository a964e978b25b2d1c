"""Keys, content types and URLs: the rules every storage backend shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import PermanentError
from conveyor.storage import (
    InvalidBlobKey,
    InvalidBlobUrl,
    UnsupportedContentType,
    check_content_type,
    check_key,
    guess_content_type,
    open_storage,
    parse_blob_url,
)
from conveyor.storage.file import FileStorage
from conveyor.storage.s3 import S3Storage


@pytest.mark.parametrize(
    "key", ["a.jpg", "thumbs/2024/cat_small.webp", "a..b.jpg", "..hidden/x", "with space.png"]
)
def test_safe_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../x.jpg",
        "a/../b.jpg",
        "a/..",
        "./a.jpg",
        "a//b",
        "nul\x00byte.jpg",
        "line\nbreak.jpg",
        "back\\slash.jpg",
        "x" * 1025,
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidBlobKey) as caught:
        check_key(key)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.JPG", "image/jpeg"),
        ("a/b.jpeg", "image/jpeg"),
        ("x.png", "image/png"),
        ("x.webp", "image/webp"),
        ("report.csv", "text/csv"),
        ("report.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("noext", "application/octet-stream"),
        ("page.html", "application/octet-stream"),
    ],
)
def test_content_type_from_extension(key: str, expected: str) -> None:
    assert guess_content_type(key) == expected


def test_content_type_allow_list() -> None:
    assert check_content_type("Text/CSV; charset=utf-8") == "text/csv; charset=utf-8"
    for refused in ("text/html", "image/svg+xml", "application/javascript", ""):
        with pytest.raises(UnsupportedContentType):
            check_content_type(refused)
    assert check_content_type("text/html", frozenset({"text/html"})) == "text/html"


def test_open_storage_by_url(tmp_path: Path) -> None:
    s3 = open_storage("s3://media/thumbs/2024/")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.url) == ("media", "thumbs/2024", "s3://media/thumbs/2024")
    assert s3.url_for("a.jpg") == "s3://media/thumbs/2024/a.jpg"
    local = open_storage(f"file://{tmp_path}")
    assert isinstance(local, FileStorage)
    assert local.url_for("x/y.png") == f"file://{tmp_path}/x/y.png"


def test_relative_file_storage_is_anchored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("file://./conveyor-data")
    assert storage.url == f"file://{tmp_path}/conveyor-data"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "media/thumbs",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://media/../x",
        "s3://media/x?versionId=1",
        "file://",
    ],
)
def test_bad_storage_urls(url: str) -> None:
    with pytest.raises(InvalidBlobUrl):
        open_storage(url)


def test_parse_s3_object_url() -> None:
    assert parse_blob_url("s3://media/a/b%20c.jpg") == ("s3://media", "a/b c.jpg")
    for bad in ("s3://media", "s3://media/", "s3://media/a/../b", "s3://media//a"):
        with pytest.raises(InvalidBlobUrl):
            parse_blob_url(bad)


def test_parse_file_url_within_root(tmp_path: Path) -> None:
    root = f"file://{tmp_path}"
    assert parse_blob_url(f"file://{tmp_path}/a/b.jpg", within=root) == (root, "a/b.jpg")
    with pytest.raises(InvalidBlobUrl, match="outside"):
        parse_blob_url(f"file://{tmp_path.parent}/other/b.jpg", within=root)
    with pytest.raises(InvalidBlobUrl, match="outside"):
        parse_blob_url(f"file://{tmp_path}-sibling/b.jpg", within=root)
    with pytest.raises(InvalidBlobUrl, match=r"\.\."):
        parse_blob_url(f"file://{tmp_path}/a/../../etc/passwd", within=root)


def test_parse_file_url_without_root_splits_at_directory(tmp_path: Path) -> None:
    assert parse_blob_url(f"file://{tmp_path}/x.png") == (f"file://{tmp_path}", "x.png")
