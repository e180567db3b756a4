"""A read-through local disk cache in front of any backend, for objects that never change."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

import xxhash

from diced.backends._base import ObjectStore, check_key
from diced.backends._forwarding import ForwardingObjectStore
from diced.errors import InvalidInputError, StorageError

__all__ = ["CachedObjectStore"]

# A cache file is this magic, the XXH3-128 digest of the payload, then the payload.
_MAGIC = b"DCO1"
_HEADER = len(_MAGIC) + 16
# Eviction frees down to this fraction of the bound, so a full cache does not rescan its
# directory on every insertion.
_LOW_WATER = 0.9
# The lock file holds the running total of cached bytes as a fixed-width decimal number.
_LEDGER_WIDTH = 20


class CachedObjectStore(ForwardingObjectStore):
    """``inner`` with a bounded, least-recently-used disk cache of its immutable objects.

    ``get`` of a key that ``is_immutable(key)`` accepts is served from ``directory`` when
    cached there, else fetched from ``inner`` and cached. Because such objects never
    change, a cached copy is never stale and needs no invalidation; every other call
    (mutable keys, writes, listings) goes to ``inner`` unchanged. ``get_range`` is served
    from a cached copy and otherwise passes through without caching. ``delete`` also drops
    the cached copy, so a deleted object is not read back in this process.

    The predicate must accept only keys whose content is the same wherever and whenever
    the key exists (diced's content-addressed blobs, pages and manifests, whose keys also
    name their repo), so one cache directory can serve several stores and processes.

    Several processes may share ``directory``: files are written to a temporary name and
    published with ``os.replace``; an ``flock`` serialises admissions and eviction, so the
    cached payloads never exceed ``max_bytes`` on disk; a file removed by another
    process's eviction reads as a miss; eviction also removes temporary files that killed
    processes left (after an hour). Each file carries the digest of its content: a
    corrupted or truncated file is detected on read, deleted and fetched again. Recency is
    the file's modification time, refreshed on every hit.

    Parameters
    ----------
    inner
        The backend holding the objects; its capabilities are this store's.
    directory
        Cache directory (``~`` expanded); created if missing.
    max_bytes
        Bound on the cached payload bytes; objects larger than it are never cached.
    is_immutable
        Whether a key names an object that, once it exists, never changes.
    """

    def __init__(self, inner: ObjectStore, directory: str, max_bytes: int,
                 is_immutable: Callable[[str], bool]) -> None:
        if max_bytes < 0:
            raise InvalidInputError(f"the cache size must be >= 0 bytes, got {max_bytes}")
        super().__init__(inner)
        self.directory = os.path.abspath(os.path.expanduser(directory))
        self.max_bytes = max_bytes
        self.is_immutable = is_immutable
        self._objects = os.path.join(self.directory, "objects")
        self._tmp = os.path.join(self.directory, "tmp")
        self._lock_path = os.path.join(self.directory, "lock")
        try:
            os.makedirs(self._objects, exist_ok=True)
            os.makedirs(self._tmp, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the cache directory {self.directory!r}: {exc}") \
                from exc

    def __repr__(self) -> str:
        return f"CachedObjectStore({self.inner!r}, {self.directory!r})"

    # -- cache files ------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        # Keys can be long and hold any character; a digest of the key is a safe file name.
        name = xxhash.xxh3_128_hexdigest(check_key(key).encode())
        return os.path.join(self._objects, name[:2], name[2:])

    def _load(self, path: str) -> bytes | None:
        """The cached payload at ``path``, or ``None`` if absent or corrupted (then removed)."""
        try:
            with open(path, "rb") as f:
                header = f.read(_HEADER)
                payload = f.read()
        except OSError:
            # Missing (never cached, or evicted) or unreadable: either way, a miss.
            return None
        if header != _MAGIC + xxhash.xxh3_128_digest(payload):
            self._discard(path)
            return None
        with suppress(FileNotFoundError):
            os.utime(path)
        return payload

    def _discard(self, path: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(path)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """Hold the cache's lock; yield its descriptor, whose content is the size ledger."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _read_ledger(fd: int) -> int | None:
        try:
            return int(os.pread(fd, _LEDGER_WIDTH, 0))
        except ValueError:
            return None

    @staticmethod
    def _write_ledger(fd: int, total: int) -> None:
        # Fixed width, so a shorter number never leaves digits of a longer one behind.
        os.pwrite(fd, b"%-*d" % (_LEDGER_WIDTH, total), 0)

    def _scan(self) -> list[tuple[float, int, str]]:
        """``(mtime, size, path)`` of every cached file."""
        entries = []
        for top in os.scandir(self._objects):
            try:
                files = list(os.scandir(top.path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in files:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, st.st_size, entry.path))
        return entries

    def _evict(self, room: int) -> int:
        """Delete least recently used files until ``room`` more bytes fit; return the total.

        The ledger of the total size is a running estimate (a process can die between
        publishing a file and counting it); the directory scan here makes it exact again.
        """
        self._remove_stale_temporaries()
        entries = sorted(self._scan())
        total = sum(size for _, size, _ in entries)
        target = int(self.max_bytes * _LOW_WATER)
        for _, size, path in entries:
            if total + room <= target:
                break
            self._discard(path)
            total -= size
        return total

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files that a killed process left behind (over an hour old)."""
        cutoff = time.time() - 3600
        for entry in os.scandir(self._tmp):
            with suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def _admit(self, path: str, data: bytes) -> None:
        """Cache ``data`` at ``path``; failures only cost a later re-fetch."""
        size = _HEADER + len(data)
        if size > self.max_bytes:
            return
        tmp = os.path.join(self._tmp, uuid.uuid4().hex)
        try:
            with open(tmp, "wb") as f:
                f.write(_MAGIC + xxhash.xxh3_128_digest(data))
                f.write(data)
            with self._locked() as ledger:
                if os.path.exists(path):
                    return
                total = self._read_ledger(ledger)
                if total is None or total + size > self.max_bytes:
                    total = self._evict(size)
                try:
                    os.replace(tmp, path)
                except FileNotFoundError:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    os.replace(tmp, path)
                self._write_ledger(ledger, total + size)
        except OSError:
            # A full or read-only cache disk must not fail reads that the backend serves.
            pass
        finally:
            self._discard(tmp)

    # -- the object-store contract ----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        if not self.is_immutable(key):
            return self.inner.get(key)
        path = self._path(key)
        data = self._load(path)
        if data is None:
            data = self.inner.get(key)
            if data is not None:
                self._admit(path, data)
        return data

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # docstring inherited
        found: dict[str, bytes | None] = {}
        for key in keys:
            if self.is_immutable(key):
                cached = self._load(self._path(key))
                if cached is not None:
                    found[key] = cached
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        for key, data in zip(missing, self.inner.get_many(missing), strict=True):
            if data is not None and self.is_immutable(key):
                self._admit(self._path(key), data)
            found[key] = data
        return [found[key] for key in keys]

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        if self.is_immutable(key):
            data = self._load(self._path(key))
            if data is not None:
                return data[start:start + length]
        return self.inner.get_range(key, start, length)

    def delete(self, key: str) -> None:
        # docstring inherited
        self.inner.delete(key)
        if self.is_immutable(key):
            self._discard(self._path(key))

