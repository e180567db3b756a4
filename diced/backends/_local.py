"""Local-filesystem backend: one file per key under a root directory."""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from diced.backends._base import ObjectInfo, ObjectStore, Versioned, check_key, content_token
from diced.errors import InvalidInputError, StorageError

__all__ = ["STALE_TEMP_SECONDS", "LocalObjectStore"]

# Private bookkeeping lives under this name; no diced key starts with a dot.
_PRIVATE = ".diced-local"
_LOCK_STRIPES = 64
#: A temporary file older than this belongs to a writer that died (a live one publishes its
#: file within milliseconds); opening a store removes such files.
STALE_TEMP_SECONDS = 3600
#: Temporary files of ``put`` and compare-and-swap sit beside their target under this
#: prefix, which no key segment may start with (diced percent-encodes ``%`` in names).
_SIBLING_TEMP = "%tmp-"


class LocalObjectStore(ObjectStore):
    """Objects as files below ``root``; conditional writes are atomic across processes.

    Every write goes to a temporary file first and is published with ``os.replace`` or
    ``os.link``, so a reader (or a process killed mid-write) never sees a torn object.
    Replaced objects (pointers, records) are written beside their target, under a name
    listings skip; created-once objects in a private directory.
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
        self._thread_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._lock_fds: dict[int, int] = {}
        self._lock_pid = os.getpid()
        # Temporary names: a random prefix per instance and process (other instances, in
        # this and other processes, forked children included, write into the same
        # directory) and a counter.
        self._names = itertools.count()
        self._name_prefix = ""
        self.sweep_temporaries(everywhere=False)

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.root!r})"

    def _path(self, key: str) -> str:
        if key.startswith(_SIBLING_TEMP) or "/" + _SIBLING_TEMP in key:
            raise InvalidInputError(
                f"invalid object key {key!r}: on local disk no key segment may start "
                f"with {_SIBLING_TEMP!r} (reserved for temporary files)")
        return os.path.join(self.root, check_key(key))

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # One descriptor per lock file, kept open for the process, taken by one thread at a
        # time (a thread lock first): flock locks belong to the open file description, so
        # threads sharing one must not rely on it, and a forked child (another process
        # id) opens its own instead of sharing its parent's.
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        with self._thread_locks[stripe]:
            fd = self._lock_fd(stripe)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd(self, stripe: int) -> int:
        pid = os.getpid()
        if self._lock_pid != pid:
            self._lock_fds, self._lock_pid = {}, pid
        fd = self._lock_fds.get(stripe)
        if fd is None:
            path = os.path.join(self._locks, f"{stripe:02x}")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                os.makedirs(self._locks, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._lock_fds[stripe] = fd
        return fd

    def close(self) -> None:
        # docstring inherited
        if self._lock_pid == os.getpid():
            for fd in self._lock_fds.values():
                os.close(fd)
        self._lock_fds = {}

    def sweep_temporaries(self, older_than: float = STALE_TEMP_SECONDS, *,
                          everywhere: bool = True) -> tuple[int, int]:
        """Delete temporary files of killed writers older than ``older_than`` seconds.

        Returns ``(files, bytes)`` removed. Never touches a live writer's file, which is
        published or removed within the write call. ``everywhere=False`` looks only in
        the private temporary directory (what opening a store does: cheap); the default
        also walks the store for the temporaries ``put`` leaves beside their target
        (what the garbage collector does: one more walk of the tree).
        """
        cutoff = time.time() - older_than
        removed = freed = 0

        def sweep(path: str) -> None:
            nonlocal removed, freed
            with suppress(FileNotFoundError):
                st = os.stat(path)
                if st.st_mtime < cutoff:
                    os.unlink(path)
                    removed, freed = removed + 1, freed + st.st_size

        try:
            entries = list(os.scandir(self._tmp))
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        except OSError as exc:
            raise StorageError(f"cannot list {self._tmp!r}: {exc}") from exc
        for entry in entries:
            sweep(entry.path)
        if everywhere:
            for dirpath, filenames in self._tree(self.root, "the store"):
                for name in filenames:
                    if name.startswith(_SIBLING_TEMP):
                        sweep(os.path.join(dirpath, name))
        return removed, freed

    def _create(self, path: str, *, parents: str) -> int:
        """A new file at ``path``, created exclusively (``FileExistsError`` if it exists)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            return os.open(path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(parents, exist_ok=True)
            return os.open(path, flags, 0o644)

    def _fill(self, fd: int, path: str, data: bytes) -> None:
        """Write ``data`` into the new file ``fd`` at ``path`` and close it.

        On failure the partial file is removed (a full disk must not stay full of
        fragments), unless another writer has replaced ``path`` meanwhile.
        """
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            with suppress(OSError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)
            raise
        finally:
            os.close(fd)

    def _temp_name(self) -> str:
        # Unique per instance, process and call: cheaper than a random name per file.
        if not self._name_prefix.startswith(f"{os.getpid()}-"):
            self._name_prefix = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        return f"{self._name_prefix}-{next(self._names)}"

    def _write_temp(self, data: bytes) -> str:
        """A new temporary file holding ``data`` in the private temporary directory."""
        tmp = os.path.join(self._tmp, self._temp_name())
        self._fill(self._create(tmp, parents=self._tmp), tmp, data)
        return tmp

    def _write_sibling(self, path: str, data: bytes) -> str:
        """A new temporary file holding ``data`` in ``path``'s directory (created if missing).

        Beside its target rather than in the store's private directory: a rename within
        one directory locks only that directory, where a rename across directories takes
        the file system's rename lock and both directories' locks, so writers of many
        pointers would queue on the one temporary directory. Its name (``%tmp-...``) is
        one no key can have (keys percent-encode ``%``), and listings skip it.
        """
        parent = os.path.dirname(path)
        tmp = os.path.join(parent, _SIBLING_TEMP + self._temp_name())
        self._fill(self._create(tmp, parents=parent), tmp, data)
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
        """Bytes ``start:start+length`` of ``key`` (to its end if ``length < 0``), or None.

        Plain ``os`` calls rather than ``open()``: a buffered file object per read was a
        third of the time of reading a chunk's file. A file never shrinks under its name
        (updates replace it whole), so reading to its size at ``fstat`` gives a whole
        snapshot of it; a blob still being written in place reads short, as it would
        with ``open()``, and fails its digest check.
        """
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
            try:
                want = length if length >= 0 else max(os.fstat(fd).st_size - start, 0)
                return os.pread(fd, want, start) if want else b""
            finally:
                os.close(fd)
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
            tmp = self._write_sibling(path, data)
            try:
                with self._locked(key):
                    os.replace(tmp, path)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
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
            tmp = self._write_sibling(path, new)
            try:
                with self._locked(key):
                    if not current_ok(self._read(key)):
                        return False
                    os.replace(tmp, path)
                    return True
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} in {self.root!r}: {exc}") from exc

    def put_immutable(self, key: str, data: bytes) -> None:
        # docstring inherited
        if self.fsync:
            # Durable order: the bytes reach the disk before the name does.
            self.put_if_absent(key, data)
            return
        path = self._path(key)
        try:
            try:
                fd = self._create(path, parents=os.path.dirname(path))
            except FileExistsError:
                if os.stat(path).st_size == len(data):
                    return
                # A shorter copy under this name is a writer killed mid-write (or one
                # still writing): replace it whole, atomically.
                tmp = self._write_temp(data)
                self._publish("replace", tmp, path)
                return
            self._fill(fd, path, data)
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

    def _tree(self, top: str, what: str) -> Iterator[tuple[str, list[str]]]:
        """``(directory, file names)`` below ``top``, without the private directory.

        A directory that vanishes while walking is skipped; any other error is a
        :class:`StorageError` naming ``what`` was being listed.
        """
        def fail(exc: OSError) -> None:
            if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                raise StorageError(f"cannot list {what} in {self.root!r}: {exc}") from exc

        for dirpath, dirnames, filenames in os.walk(top, onerror=fail):
            if dirpath == self.root:
                dirnames[:] = [d for d in dirnames if d != _PRIVATE]
            yield dirpath, filenames

    def _walk(self, prefix: str) -> Iterator[tuple[str, str]]:
        """``(key, path)`` of every object whose key starts with ``prefix``."""
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(self.root, base) if base else self.root
        for dirpath, filenames in self._tree(top, repr(prefix)):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                if name.startswith(_SIBLING_TEMP):
                    continue
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
