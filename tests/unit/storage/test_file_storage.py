"""What only `file://` storage does: atomic writes, normal permissions, no escape through
symlinks, and OS errors mapped to classified storage errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.storage import BlobNotFound, InvalidBlobKey, open_storage


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}")
    storage.put("a/b/c.bin", b"x" * 1000)
    storage.put("a/b/c.bin", b"y" * 10)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.bin"]
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"y" * 10


def test_files_get_umask_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        open_storage(f"file://{tmp_path}").put("p.png", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside)
    storage = open_storage(f"file://{root}")
    with pytest.raises(InvalidBlobKey, match="outside"):
        storage.get("link/secret.txt")
    with pytest.raises(InvalidBlobKey, match="outside"):
        storage.put("link/new.txt", b"x")
    assert not (outside / "new.txt").exists()


def test_a_directory_is_not_an_object(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}")
    storage.put("dir/file.txt", b"x")
    assert not storage.exists("dir")
    with pytest.raises(BlobNotFound):
        storage.get("dir")
