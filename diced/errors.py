"""diced's exception tree.

Every error diced raises on purpose derives from :class:`DicedException` (the name the
archived DICED used), so ``except DicedException`` catches them all. Each message names
what was wrong and what to do about it. Errors from the object store (``OSError`` and
friends) are translated once, at the backend boundary, into :class:`StorageError`.

The leaf classes also derive from the matching builtin (``KeyError``, ``ValueError``,
``PermissionError``...) so code written against plain Python conventions still works.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "DicedException",
    "FormatVersionError",
    "InvalidIndexError",
    "InvalidInputError",
    "LockedError",
    "NotFoundError",
    "ReadOnlyStoreError",
    "StorageError",
]


class DicedException(Exception):
    """Root of every error diced raises on purpose."""


class NotFoundError(DicedException, KeyError):
    """A repo, version node, array, file or store location does not exist."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(DicedException, ValueError):
    """A name (repo, array, file, branch) is already taken where it must be unique."""


class LockedError(DicedException, PermissionError):
    """A write was attempted on a locked node or a read-only handle."""


class ReadOnlyStoreError(LockedError, ValueError):
    """A write through a read-only zarr Store of diced (a locked version, a read-only repo).

    Also a ``ValueError``, which is what zarr's own read-only stores raise.
    """


class ConflictError(DicedException, RuntimeError):
    """Concurrent writers kept changing the same object; the operation gave up.

    Also raised when a node was locked by another process while a write was in flight:
    the write may or may not be part of the locked version.
    """


class InvalidInputError(DicedException, ValueError):
    """An argument is malformed: a bad name, index, shape, dtype or value."""


class InvalidIndexError(InvalidInputError, IndexError):
    """An index or selection does not fit the array (too many indices, out of bounds)."""


class StorageError(DicedException, OSError):
    """The backing object store failed (I/O error, permission, missing capability)."""


class FormatVersionError(DicedException):
    """The store was written by a newer (or unknown) on-store format than this diced reads."""
