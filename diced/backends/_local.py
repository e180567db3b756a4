"""Local-filesystem backend: one file per key under a root directory."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from diced.backends._base import ObjectInfo, ObjectStore, Versioned, check_key, content_token
from diced.errors import StorageError

__all__ = ["STALE_TEMP_SECONDS", "LocalObjectStore"]

# Private bookkeeping lives under this name; no diced key starts with a dot.
_PRIVATE = ".diced-local"
_LOCK_STRIPES = 64
#: A temporary file older than this belongs to a writer that died (a live one publishes its
#: file within milliseconds); opening a store removes such files.
STALE_TEMP_SECONDS = 3600


class LocalObjectStore(ObjectStore):
    """Objects as files below ``root``; conditional writes are atomic across processes.

    Every write goes to a temporary file first and is published with ``os.replace`` or
    ``os.link``, so a reader (or a process killed mid-write) never sees a torn object.
    ``put_if_absent`` relies on ``link`` failing atomically when the name exists.
    ``compare_and_swap``, ``put`` and ``delete`` hold an ``flock`` on one of 64 lock files
    (chosen by a hash of the key) around compare-and-publish, which makes them atomic
    against each other in every process on the machine. Network filesystems whose
    ``flock`` is not coherent across machines are not supported for concurrent writers.

    Parameters
    ----------
    root
        Directory holding the objects; created if missing (its parent must exist).
    fsync
        Flush each object to stable storage before publishing it. Off by default: writes
        then survive a killed process but not a power cut.
    """

    def __init__(self, root: str, *, fsync: bool = False) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.fsync = fsync
        # Created on the first write, so opening a location that turns out not to be a
        # store leaves it untouched.
        self._tmp = os.path.join(self.root, _PRIVATE, "tmp")
        self._locks = os.path.join(self.root, _PRIVATE, "locks")
        self.sweep_temporaries()

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.root!r})"

    def _path(self, key: str) -> str:
        return os.path.join(self.root, check_key(key))

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # A fresh descriptor per call: flock locks belong to the open file description,
        # so this excludes other threads, other processes and forked children alike.
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        path = os.path.join(self._locks, f"{stripe:02x}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(self._locks, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def sweep_temporaries(self, older_than: float = STALE_TEMP_SECONDS) -> tuple[int, int]:
        """Delete temporary files of killed writers older than ``older_than`` seconds.

        Returns ``(files, bytes)`` removed. Never touches a live writer's file, which is
        published or removed within the write call.
        """
        cutoff = time.time() - older_than
        removed = freed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except (FileNotFoundError, NotADirectoryError):
            return 0, 0
        except OSError as exc:
            raise StorageError(f"cannot list {self._tmp!r}: {exc}") from exc
        for entry in entries:
            with suppress(FileNotFoundError):
                st = entry.stat()
                if st.st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed, freed = removed + 1, freed + st.st_size
        return removed, freed

    def _write_temp(self, data: bytes) -> str:
        tmp = os.path.join(self._tmp, uuid.uuid4().hex)
        try:
            f = open(tmp, "wb")  # noqa: SIM115 - closed by the with block below
        except FileNotFoundError:
            os.makedirs(self._tmp, exist_ok=True)
            f = open(tmp, "wb")  # noqa: SIM115
        try:
            with f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            # A full disk (ENOSPC) must not leave the partial file behind to keep it full.
            with suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _publish(self, publish: str, tmp: str, path: str) -> None:
        """Move ``tmp`` to ``path`` by ``os.replace`` or ``os.link``, creating parents."""
        op = os.replace if publish == "replace" else os.link
        try:
            op(tmp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            op(tmp, path)

    def _read(self, key: str, start: int = 0, length: int = -1) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                if start:
                    f.seek(start)
                return f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} in {self.root!r}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        return self._read(key)

    def get_versioned(self, key: str) -> Versioned | None:
        # docstring inherited
        data = self._read(key)
        return None if data is None else Versioned(data, content_token(data))

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        return self._read(key, start, length)

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        path = self._path(key)
        try:
            tmp = self._write_temp(data)
            with self._locked(key):
                self._publish("replace", tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.root!r}: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        path = self._path(key)
        try:
            tmp = self._write_temp(data)
            try:
                self._publish("link", tmp, path)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.root!r}: {exc}") from exc

    def _swap_if(self, key: str, current_ok: Callable[[bytes | None], bool], new: bytes) -> bool:
        """Replace the object with ``new`` if ``current_ok(current content)``, under the lock."""
        path = self._path(key)
        try:
            tmp = self._write_temp(new)
            try:
                with self._locked(key):
                    if not current_ok(self._read(key)):
                        return False
                    self._publish("replace", tmp, path)
                    return True
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.root!r}: {exc}") from exc

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        return self._swap_if(key, lambda current: current == expected, new)

    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        # docstring inherited
        if token is None:
            return self.put_if_absent(key, data)
        return self._swap_if(
            key, lambda current: current is not None and content_token(current) == token, data)

    def delete(self, key: str) -> None:
        # docstring inherited
        path = self._path(key)
        try:
            with self._locked(key):
                os.unlink(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} in {self.root!r}: {exc}") from exc

    def _walk(self, prefix: str) -> Iterator[tuple[str, str]]:
        """``(key, path)`` of every object whose key starts with ``prefix``."""
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(self.root, base) if base else self.root
        def fail(exc: OSError) -> None:
            if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise StorageError(f"cannot list {prefix!r} in {self.root!r}: {exc}") from exc

        for dirpath, dirnames, filenames in os.walk(top, onerror=fail):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            if not rel:
                dirnames[:] = [d for d in dirnames if d != _PRIVATE]
            for name in filenames:
                key = rel + name
                if key.startswith(prefix):
                    yield key, os.path.join(dirpath, name)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        for key, _ in self._walk(prefix):
            yield key

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        # docstring inherited
        for key, path in self._walk(prefix):
            try:
                st = os.stat(path)
            except FileNotFoundError:  # deleted while listing
                continue
            yield ObjectInfo(key, st.st_size, st.st_mtime)
