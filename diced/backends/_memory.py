"""In-memory backend over fsspec's ``memory://`` filesystem (one process only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

from fsspec.implementations.memory import MemoryFileSystem

from diced.backends._base import ObjectInfo, ObjectStore, Versioned, check_key, content_token
from diced.errors import StorageError

__all__ = ["MemoryObjectStore"]


class MemoryObjectStore(ObjectStore):
    """Objects in fsspec's process-wide memory filesystem, below ``root``.

    Two stores opened on the same ``memory://`` path in one process see the same objects,
    as fsspec's memory filesystem is shared by design. One lock serialises every write,
    which makes the conditional writes atomic between threads; nothing is shared between
    processes.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, root: str) -> None:
        self.fs = MemoryFileSystem()
        self.root = "/" + root.strip("/")

    def __repr__(self) -> str:
        return f"MemoryObjectStore({self.root!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}".replace("//", "/")

    def _pipe(self, path: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(path, bytes(data))
        except OSError as exc:
            raise StorageError(f"cannot write {path!r} in memory: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def get_versioned(self, key: str) -> Versioned | None:
        # docstring inherited
        data = self.get(key)
        return None if data is None else Versioned(data, content_token(data))

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        data = self.get(key)
        return None if data is None else data[start : start + length]

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        path = self._path(key)
        with self._lock:
            self._pipe(path, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        path = self._path(key)
        with self._lock:
            if self.fs.isfile(path):
                return False
            self._pipe(path, data)
            return True

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        path = self._path(key)
        with self._lock:
            if self.get(key) != expected:
                return False
            self._pipe(path, new)
            return True

    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        # docstring inherited
        if token is None:
            return self.put_if_absent(key, data)
        path = self._path(key)
        with self._lock:
            current = self.get(key)
            if current is None or content_token(current) != token:
                return False
            self._pipe(path, data)
            return True

    def delete(self, key: str) -> None:
        # docstring inherited
        path = self._path(key)
        with self._lock:
            if self.fs.isfile(path):
                self.fs.rm_file(path)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        for info in self.list_info(prefix):
            yield info.key

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        # docstring inherited
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = f"{self.root}/{base}".rstrip("/") if base else self.root
        if not self.fs.exists(top):
            return
        start = len(self.root.rstrip("/")) + 1
        with self._lock:
            found = self.fs.find(top, detail=True)
        for path, details in found.items():
            key = path[start:]
            if key.startswith(prefix):
                yield ObjectInfo(key, int(details["size"]), float(details.get("created") or 0.0))
