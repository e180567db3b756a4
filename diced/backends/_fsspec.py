"""Backends over fsspec filesystems: a generic read-only one, and the base of GCS and S3.

:class:`FsspecObjectStore` implements the request primitives of
:class:`~diced.backends._requests.RequestObjectStore` with any fsspec filesystem, which
serves it read-only. The GCS and S3 backends (:class:`BucketObjectStore` subclasses)
override the primitives with native conditional requests and declare themselves writable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from diced.backends._base import ObjectInfo
from diced.backends._requests import WRITE_ID, PreconditionFailed, RequestObjectStore
from diced.errors import StorageError

__all__ = [
    "WRITE_ID",
    "BucketObjectStore",
    "FsspecObjectStore",
    "PreconditionFailed",
    "modified_time",
]


class FsspecObjectStore(RequestObjectStore):
    """Objects as files of any fsspec filesystem below ``root``; read-only.

    Writing safely needs atomic create-only and compare-and-swap writes, which a generic
    filesystem (HTTP, SFTP, a zip archive...) does not offer: every write method raises
    :class:`~diced.errors.StorageError` naming the missing capability rather than write
    with a check-then-write race. Plain reads and listings work wherever the filesystem can
    read and list. Subclasses for stores with conditional requests (GCS, S3) override the
    primitives and declare ``writable`` and ``atomic_conditional_writes``.

    Parameters
    ----------
    fs
        The fsspec filesystem instance.
    root
        Path of the store inside ``fs`` (no protocol), e.g. ``bucket/prefix``.
    """

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{type(self).__name__}('{protocol}://{self.root}')"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    # -- primitives (docstrings in RequestObjectStore) ----------------------------------------

    def _fetch(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self._path(key)
        if self.fs.isdir(path):
            raise FileNotFoundError(path)
        if start is not None and end is not None:
            return bytes(self.fs.cat_file(path, start=start, end=end))
        return bytes(self.fs.cat_file(path))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(base) if base else self.root
        self.fs.invalidate_cache(top)
        if not self.fs.isdir(top):
            return
        for path, details in self.fs.find(top, detail=True).items():
            key = path[len(self.root):].lstrip("/") if path.startswith(self.root) else path
            # Keys never start with a dot: such names are a backend's private bookkeeping
            # (the local backend's lock files, for one).
            if key.startswith(prefix) and not key.startswith("."):
                yield ObjectInfo(key, int(details.get("size") or 0), modified_time(details))

    def _missing_capability(self, what: str) -> StorageError:
        return StorageError(
            f"{self!r} cannot write: the {type(self.fs).__name__} filesystem offers no atomic "
            f"create-only or compare-and-swap write (needed for {what}; capability "
            "'atomic_conditional_writes'), and diced refuses to write where concurrent "
            "writers could silently lose updates. Read the store here, or copy it to local "
            "disk, gs:// or s3:// to write to it."
        )


def modified_time(details: Mapping[str, Any]) -> float:
    """Seconds since the epoch from a listing entry, whatever the filesystem calls it."""
    for field in ("mtime", "LastModified", "updated", "last_modified", "created", "ctime"):
        value = details.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


class BucketObjectStore(FsspecObjectStore):
    """Base of the object-store backends with conditional requests: a bucket and a prefix.

    ``_name(key)`` is the object name of a key inside the bucket.
    """

    writable = True
    atomic_conditional_writes = True

    def __init__(self, fs: Any, bucket: str, prefix: str) -> None:
        super().__init__(fs, f"{bucket}/{prefix.strip('/')}".rstrip("/"))
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key
