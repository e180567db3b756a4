"""The request machinery every remote backend shares: the contract built from primitives.

:class:`RequestObjectStore` implements the :class:`~diced.backends.ObjectStore` contract from
a handful of primitives (fetch, fetch with a version token, store with a precondition, read
back a write id, remove, list), in the way fsspec's own filesystems derive everything from a
few methods. The fsspec backends (:mod:`diced.backends._fsspec`, GCS, S3) and the obstore
backend (:mod:`diced.backends._obstore`) implement the primitives with their library's
requests; retries, lost responses and compare-and-swap live here, once.

Conditional writes and lost responses
-------------------------------------
A conditional write whose response is lost (a timeout, a reset connection) is re-sent by the
storage library or by :meth:`RequestObjectStore._attempt`; if the first request had landed,
the re-sent one fails its precondition against that very success. Every conditional write
therefore carries a random *write id* in the object's custom metadata, and on a failed
precondition or a transport error the store reads the id back: if it is ours, the write
landed and the call reports success.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from diced.backends._base import ObjectInfo, ObjectStore, Versioned, check_key, content_token
from diced.errors import DicedException, StorageError

__all__ = ["LAZY_INIT", "WRITE_ID", "PreconditionFailed", "RequestObjectStore"]

_T = TypeVar("_T")

#: Custom-metadata field holding the id of the conditional write that produced an object.
WRITE_ID = "diced-write-id"
#: Guards the lazy creation of a store's batch machinery (get_many may race on threads).
LAZY_INIT = threading.Lock()


class PreconditionFailed(Exception):
    """A conditional request was refused (HTTP 412): the object is not as the write assumed."""


class _ObjectGone(Exception):
    """A write conditional on a version found no object at all."""


class RequestObjectStore(ObjectStore):
    """The contract over a few request primitives, with retries and lost-response checks.

    Subclasses implement ``_fetch`` and ``_list`` (enough to read), and for writes
    ``_store``, ``_write_id`` and ``_remove`` with native conditional requests, declaring
    ``writable`` and ``atomic_conditional_writes``. Primitives raise the library's
    exceptions, :class:`FileNotFoundError` for a missing key and
    :class:`PreconditionFailed` for a refused precondition; ``_is_transient`` says which of
    the rest are worth sending again.
    """

    writable = False
    atomic_conditional_writes = False
    remote = True
    #: Tries per request when it fails transiently, on top of the library's own retries.
    attempts = 4
    #: First back-off delay in seconds; doubled on every further try, with jitter.
    backoff = 0.2
    #: Read-compare-write rounds of one compare_and_swap while other writers rewrite the
    #: object with the expected content (each round that loses to a different content ends
    #: the call with False at once).
    swap_rounds = 8
    #: Requests of one get_many in flight at once.
    batch_concurrency = 32

    _batch_pool: ThreadPoolExecutor | None = None

    # -- primitives: raise the library's exceptions, FileNotFoundError for a missing key ----

    def _fetch(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the object (all when both are ``None``); ``b""`` for a
        range past the end."""
        raise NotImplementedError

    def _fetch_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and an opaque token naming exactly that version of it."""
        data = self._fetch(key)
        return data, content_token(data)

    def _store(self, key: str, data: bytes, *, if_absent: bool = False,
               if_version: str | None = None, write_id: str | None = None) -> None:
        """Write the object, only if absent or only if at ``if_version`` when asked; raise
        :class:`PreconditionFailed` when that precondition does not hold."""
        raise self._missing_capability("atomic writes")

    def _write_id(self, key: str) -> str | None:
        """The write id in the object's metadata (``None`` when it has none)."""
        raise self._missing_capability("conditional writes")

    def _remove(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        raise self._missing_capability("deletes")

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (keys relative to the store)."""
        raise NotImplementedError

    def _is_transient(self, exc: BaseException) -> bool:
        """Whether a failed request may succeed if sent again."""
        return isinstance(exc, TimeoutError | ConnectionError)

    # -- the contract, built on the primitives ------------------------------------------------

    def _missing_capability(self, what: str) -> StorageError:
        return StorageError(
            f"{self!r} cannot write: it offers no atomic create-only or compare-and-swap "
            f"write (needed for {what}; capability 'atomic_conditional_writes'), and diced "
            "refuses to write where concurrent writers could silently lose updates."
        )

    def _require_writable(self) -> None:
        if not (self.writable and self.atomic_conditional_writes):
            raise self._missing_capability("every write")

    def _attempt(self, action: str, key: str, request: Callable[[], _T]) -> _T:
        """Run ``request``, re-sending it with back-off while it fails transiently.

        :class:`FileNotFoundError` and :class:`PreconditionFailed` pass through for the
        caller to interpret; every other failure becomes a :class:`StorageError`.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return request()
            except (FileNotFoundError, PreconditionFailed, DicedException):
                raise
            except Exception as exc:
                if attempt < self.attempts and self._is_transient(exc):
                    time.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
                    continue
                raise StorageError(f"cannot {action} {key!r} in {self!r}: "
                                   f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, key: str, start: int | None = None, end: int | None = None
              ) -> bytes | None:
        check_key(key)
        try:
            return self._attempt("read", key, lambda: self._fetch(key, start, end))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def _write(self, key: str, data: bytes, **precondition: Any) -> None:
        try:
            self._attempt("write", key, lambda: self._store(key, bytes(data), **precondition))
        except FileNotFoundError as exc:
            if precondition.get("if_version") is not None:
                raise _ObjectGone(key) from exc
            raise StorageError(f"cannot write {key!r} in {self!r}: the bucket does not exist "
                               "(create it first)") from exc

    def _conditional_write(self, key: str, data: bytes, **precondition: Any) -> bool:
        """Write under ``precondition``; ``True`` if this call's write is the one that landed."""
        write_id = uuid.uuid4().hex
        try:
            self._write(key, data, write_id=write_id, **precondition)
            return True
        except _ObjectGone:
            # If-Match on a deleted object: S3 answers 404 rather than 412.
            return False
        except PreconditionFailed:
            # Another writer got there first, or an earlier try of this very call landed
            # and only its response was lost: the write id tells which.
            return self._landed(key, write_id)
        except StorageError:
            try:
                landed = self._landed(key, write_id)
            except StorageError:
                landed = False
            if landed:
                return True
            raise

    def _landed(self, key: str, write_id: str) -> bool:
        try:
            return self._attempt("read", key, lambda: self._write_id(key)) == write_id
        except FileNotFoundError:
            return False

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        return self._read(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # docstring inherited
        for key in keys:
            check_key(key)
        if len(keys) < 2:
            return [self.get(key) for key in keys]
        return self._get_batch(keys)

    def _get_batch(self, keys: Sequence[str]) -> list[bytes | None]:
        """Two or more objects (valid keys), their requests in flight together."""
        return list(self._batches().map(self.get, keys))

    def put_many_immutable(self, items: Sequence[tuple[str, bytes]]) -> None:
        # docstring inherited
        for key, _ in items:
            check_key(key)
        if len(items) < 2:
            for key, data in items:
                self.put_immutable(key, data)
            return
        list(self._batches().map(lambda item: self.put_immutable(*item), items))

    def _batches(self) -> ThreadPoolExecutor:
        """The threads that keep a batch's requests in flight together."""
        with LAZY_INIT:
            if self._batch_pool is None:
                # The library calls are synchronous here: a few threads keep them in flight.
                self._batch_pool = ThreadPoolExecutor(self.batch_concurrency,
                                                      thread_name_prefix="diced-batch")
            return self._batch_pool

    def get_versioned(self, key: str) -> Versioned | None:
        # docstring inherited
        check_key(key)
        try:
            data, token = self._attempt("read", key, lambda: self._fetch_versioned(key))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return Versioned(data, token)

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        # An empty range is not a valid HTTP range: read one byte to learn whether the
        # object exists.
        data = self._read(key, start, start + max(length, 1))
        return None if data is None else data[:length]

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        check_key(key)
        self._require_writable()
        self._write(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        check_key(key)
        self._require_writable()
        return self._conditional_write(key, data, if_absent=True)

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        check_key(key)
        self._require_writable()
        for _ in range(self.swap_rounds):
            try:
                current, version = self._attempt("read", key, lambda: self._fetch_versioned(key))
            except FileNotFoundError:
                return False
            if current != expected:
                return False
            if self._conditional_write(key, new, if_version=version):
                return True
            # The object changed between the read and the write; its new content may still
            # equal ``expected`` (another writer rewrote the same bytes): compare again.
        return False

    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        # docstring inherited
        check_key(key)
        self._require_writable()
        if token is None:
            return self._conditional_write(key, data, if_absent=True)
        return self._conditional_write(key, data, if_version=token)

    def delete(self, key: str) -> None:
        # docstring inherited
        check_key(key)
        self._require_writable()
        self._attempt("delete", key, lambda: self._remove(key))

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        # docstring inherited
        try:
            found = self._attempt("list", prefix, lambda: list(self._list(prefix)))
        except FileNotFoundError:
            return iter(())
        return iter(found)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        return (info.key for info in self.list_info(prefix))

    def close(self) -> None:
        # docstring inherited
        with LAZY_INIT:
            pool, self._batch_pool = self._batch_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
