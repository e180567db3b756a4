"""The object-store contract every diced backend implements.

diced keeps everything in a flat namespace of keys (``/``-separated, relative, no ``..``)
mapped to immutable-while-read byte strings. A handful of primitives are enough for
versioning: plain get / ranged get / put / delete / list, plus conditional writes that make
concurrent writers safe: put-if-absent, and compare-and-swap either against the content or
against the *version token* a :meth:`ObjectStore.get_versioned` returned (so a
read-modify-write needs no second read). The conditional writes map directly onto GCS
generation preconditions (``ifGenerationMatch=0`` and ``=N``) and S3
``If-None-Match: *`` / ``If-Match: etag``.

Backends raise :class:`diced.errors.StorageError` for I/O failures and never return partial
data: every write is all-or-nothing from a reader's point of view. A key must not be a
``/``-prefix of another key (``a`` and ``a/b`` cannot both exist): filesystems cannot hold
both, and diced's key layout never needs it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import xxhash

from diced.errors import InvalidInputError

__all__ = ["ObjectInfo", "ObjectStore", "Versioned", "check_key", "content_token"]

# Absolute keys, empty or dot segments, NUL, backslash, and a leading dot (which backends
# reserve for private bookkeeping) are refused.
_BAD_KEY = re.compile(r"(^[/.])|(//)|(/\.\.?(/|$))|[\x00\\]")


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid relative object key, else raise.

    Raises
    ------
    InvalidInputError
        The key is empty, absolute, contains ``..``/``.`` segments, ``//``, NUL or ``\\``.
    """
    # Plain substring tests first: this runs on every request, and the regular
    # expression is needed only for keys with a segment that starts with a dot.
    if (not key or key[0] in "/." or key[-1] == "/" or "//" in key or "\\" in key
            or "\x00" in key or ("/." in key and _BAD_KEY.search(key))):
        raise InvalidInputError(f"invalid object key {key!r}: keys are relative '/'-paths")
    return key


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the opaque token naming exactly that version of it.

    Pass ``token`` to :meth:`ObjectStore.put_if_match` to replace the object only if no
    other write landed since it was read. Tokens are backend-specific (a GCS generation,
    an S3 ETag, a digest of the content on local disk) and compare only within one key.
    """

    data: bytes
    token: str


@dataclass(frozen=True)
class ObjectInfo:
    """A listed object: its key, its size in bytes and when it was last written.

    ``modified`` is seconds since the epoch (UTC), as the backend reports it; garbage
    collection compares it with the current time, so clocks must roughly agree.
    """

    key: str
    size: int
    modified: float


def content_token(data: bytes) -> str:
    """A version token derived from the content (for backends without native versions).

    Equal content gives equal tokens, so a content-token compare-and-swap is exactly a
    content compare-and-swap: safe for diced's objects, where equal bytes mean equal state.
    """
    return "x" + xxhash.xxh3_128_hexdigest(data)


class ObjectStore(ABC):
    """A flat key → bytes store with atomic single-object writes.

    Capabilities are class attributes so callers can branch on them.
    """

    #: put_if_absent and compare_and_swap are atomic against every other writer, in any
    #: process or machine, not a check followed by a write.
    atomic_conditional_writes: bool = True
    #: The backend accepts writes at all.
    writable: bool = True
    #: Every request crosses a network (a bucket): one listing can replace many gets, and
    #: many requests should be in flight at once.
    remote: bool = False

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the whole object, or ``None`` when no object has that key.

        A concurrent put is seen entirely or not at all, never torn.
        """

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``[get(key) for key in keys]``: each object, or ``None`` where it is missing.

        Remote backends send the requests concurrently (one round trip for the batch rather
        than one per key). Each object is read atomically; the batch is not a snapshot.
        """
        return [self.get(key) for key in keys]

    @abstractmethod
    def get_versioned(self, key: str) -> Versioned | None:
        """Return the whole object with its version token, or ``None`` when missing.

        One request where the backend has native versions (GCS, S3).
        """

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        """Return ``length`` bytes from offset ``start`` (fewer at the end of the object).

        ``None`` when the key is missing; ``b""`` when ``start`` is at or past the end or
        ``length`` is 0.
        """

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object atomically: readers see the old or new bytes.

        Linearizable with :meth:`compare_and_swap` on the same key.
        """

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has that key; atomic.

        Returns ``True`` if this call created it, ``False`` if the key already existed
        (its content is left unchanged). Exactly one of several racing callers wins.
        """

    def put_immutable(self, key: str, data: bytes) -> None:
        """Store content-addressed bytes: ``key`` names exactly this content (a digest).

        Idempotent; concurrent calls with the same key store the same bytes. Unlike
        :meth:`put_if_absent` it need not tell who created the object, so a backend may
        take a cheaper path (the local one writes in place and repairs a torn copy). When
        it returns, ``get(key)`` returns ``data``.
        """
        self.put_if_absent(key, data)

    def put_many_immutable(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`put_immutable` of each ``(key, data)``.

        Remote backends send the requests concurrently (one round trip for the batch rather
        than one per object). When it returns every object is stored; when it raises, any
        of them may be (they are content-addressed, so a retry stores the same bytes).
        """
        for key, data in items:
            self.put_immutable(key, data)

    @abstractmethod
    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        """Replace the object with ``new`` only if its current content equals ``expected``.

        Atomic: between the comparison and the replacement no other write to the key can
        land. Returns ``False`` (and writes nothing) when the current content differs or
        the key is missing. Comparing content rather than an opaque version makes a
        retried call after a lost response safe: a caller that sees ``False`` re-reads
        and finds its own ``new`` there.
        """

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        """Write ``data`` only if the object is still the version ``token`` names.

        ``token=None`` means "only if absent" (as :meth:`put_if_absent`). Atomic like
        :meth:`compare_and_swap`. Returns ``False`` (and writes nothing) when another write
        landed since the token was read, or the object is missing (for a token).
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error. Atomic."""

    @abstractmethod
    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Yield every key that starts with ``prefix`` (a plain string prefix), any order.

        Objects created or deleted during the iteration may or may not be included.
        """

    @abstractmethod
    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        """Like :meth:`list_prefix`, with each object's size and modification time."""

    def sweep_temporaries(self, older_than: float) -> tuple[int, int]:
        """Delete temporary files killed writers left, older than ``older_than`` seconds.

        Returns ``(files, bytes)`` removed. Only backends that write temporary files
        (local disk) have any; the others remove nothing.
        """
        return 0, 0

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release handles; the store must not be used afterwards."""
