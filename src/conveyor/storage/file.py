"""`file://dir`: objects as files under one directory, written atomically."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import IO

from conveyor.storage.base import Storage
from conveyor.storage.errors import (
    BlobForbidden,
    BlobNotFound,
    BlobTooLarge,
    InvalidBlobKey,
    StorageUnavailable,
)

_COPY_CHUNK = 1024 * 1024


class FileStorage(Storage):
    """Objects stored as files below `root` (created on the first write).

    Content types are not kept on disk; `stat` guesses them from the extension.
    """

    scheme = "file"

    def __init__(
        self, root: str | os.PathLike[str], allowed_content_types: frozenset[str] | None = None
    ) -> None:
        super().__init__("", allowed_content_types)
        self.root = Path(os.path.abspath(root))

    @property
    def url(self) -> str:
        return "file://" + self.root.as_posix()

    def _file(self, path: str) -> Path:
        target = self.root / path
        # A symlink inside the root could still point outside it: check where it really lands.
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(target)
        if os.path.commonpath([real_root, real]) != real_root:
            raise InvalidBlobKey(f"blob key {path!r} resolves outside {self.url}")
        return target

    def _put(self, path: str, data: bytes | IO[bytes] | os.PathLike[str], content_type: str) -> int:
        target = self._file(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target, then rename: readers never see half an object.
            # open(..., "xb") rather than mkstemp: the file gets the usual umask permissions.
            tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
            try:
                with open(tmp, "xb") as out:
                    if isinstance(data, bytes):
                        out.write(data)
                    elif isinstance(data, os.PathLike):
                        with open(data, "rb") as src:
                            shutil.copyfileobj(src, out, _COPY_CHUNK)
                    else:
                        shutil.copyfileobj(data, out, _COPY_CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return target.stat().st_size
        except OSError as exc:
            raise _mapped(exc, self._url(path)) from exc

    def _get(self, path: str, max_bytes: int | None) -> bytes:
        with self._open(path) as stream:
            if max_bytes is None:
                return stream.read()
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BlobTooLarge(f"{self._url(path)} is larger than {max_bytes} bytes")
        return data

    def _open(self, path: str) -> IO[bytes]:
        target = self._file(path)
        try:
            return open(target, "rb")
        except OSError as exc:
            raise _mapped(exc, self._url(path)) from exc

    def _stat(self, path: str) -> tuple[int, str | None] | None:
        try:
            found = self._file(path).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _mapped(exc, self._url(path)) from exc
        return (found.st_size, None) if not os.path.isdir(self._file(path)) else None

    def _delete(self, path: str) -> None:
        try:
            self._file(path).unlink(missing_ok=True)
        except OSError as exc:
            raise _mapped(exc, self._url(path)) from exc

    def _url(self, path: str) -> str:
        return "file://" + (self.root / path).as_posix()


def _mapped(exc: OSError, url: str) -> Exception:
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return BlobNotFound(f"no object at {url}")
    if isinstance(exc, PermissionError):
        return BlobForbidden(f"permission denied for {url}")
    # A full disk or an I/O error may clear up; let the job try again later.
    return StorageUnavailable(f"{url}: {exc.strerror or exc}")
