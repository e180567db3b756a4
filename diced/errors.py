"""diced's exception tree.

Every error diced raises on purpose derives from :class:`DicedException` (the name the
archived DICED used), so ``except DicedException`` catches them all. Each message names
what was wrong and what to do about it. Errors from the object store (``OSError`` and
friends) are translated once, at the backend boundary, into :class:`StorageError`.

The leaf classes also derive from the matching builtin (``KeyError``, ``ValueError``,
``PermissionError``...) so code written against plain Python conventions still works.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "DicedException",
    "FormatVersionError",
    "InvalidIndexError",
    "InvalidInputError",
    "LockedError",
    "MergeConflict",
    "MergeConflictError",
    "NotFoundError",
    "ReadOnlyStoreError",
    "StorageError",
    "raced_lock",
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


@contextmanager
def raced_lock(operation: str) -> Iterator[None]:
    """Run an operation made of many separately guarded writes as one.

    Each write checks that its node is open; when another process locks the node after
    some writes landed, the next one raises :class:`LockedError` ("nothing was written"),
    which is wrong for the operation as a whole. Inside this context that error becomes a
    :class:`ConflictError` naming ``operation``. Check that the node is open *before*
    entering, so that a node locked from the start still raises :class:`LockedError`.
    """
    try:
        yield
    except ReadOnlyStoreError:
        raise
    except LockedError as exc:
        raise ConflictError(
            f"the version node was locked by another process during {operation}; what was "
            "written before the lock may be in the locked version: branch and write again"
        ) from exc


class InvalidInputError(DicedException, ValueError):
    """An argument is malformed: a bad name, index, shape, dtype or value."""


class InvalidIndexError(InvalidInputError, IndexError):
    """An index or selection does not fit the array (too many indices, out of bounds)."""


class StorageError(DicedException, OSError):
    """The backing object store failed (I/O error, permission, missing capability)."""


class FormatVersionError(DicedException):
    """The store was written by a newer (or unknown) on-store format than this diced reads."""


@dataclass(frozen=True)
class MergeConflict:
    """One conflict of a merge: where the merged versions changed the same thing differently.

    ``kind`` is ``"voxels"`` (voxels of one chunk of array ``name`` set to different values
    on different sides: ``chunk`` is its storage-grid coordinates, ``voxels`` how many
    voxels conflict, ``box`` their bounding box in voxels, one half-open ``(start, stop)``
    per axis), ``"array"`` (array ``name`` changed incompatibly: deleted on one side and
    changed on another, created on several sides with different metadata, or metadata
    changed differently) or ``"file"`` (file ``name`` changed differently). ``detail``
    says what happened, naming the versions.
    """

    kind: Literal["voxels", "array", "file"]
    name: str
    chunk: tuple[int, ...] | None = None
    voxels: int = 0
    box: tuple[tuple[int, int], ...] | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "voxels":
            box = ", ".join(f"{a}:{b}" for a, b in self.box or ())
            return (f"array {self.name!r} chunk {self.chunk}: {self.voxels} voxels set to "
                    f"different values (box {box})")
        return f"{self.kind} {self.name!r}: {self.detail}"


class MergeConflictError(DicedException, RuntimeError):
    """A merge found conflicts it was told not to resolve; nothing was written.

    ``conflicts`` lists every :class:`MergeConflict`; the message shows the first ones.
    """

    #: How many conflicts the message lists (all of them are in ``conflicts``).
    SHOWN = 20

    def __init__(self, conflicts: Sequence[MergeConflict], advice: str) -> None:
        self.conflicts = tuple(conflicts)
        self.advice = advice
        lines = [str(c) for c in self.conflicts[:self.SHOWN]]
        if len(self.conflicts) > self.SHOWN:
            lines.append(f"... and {len(self.conflicts) - self.SHOWN} more")
        super().__init__(f"the merge has {len(self.conflicts)} conflict(s) and wrote "
                         f"nothing: {'; '.join(lines)}. {advice}")

    def __reduce__(self) -> tuple[type[MergeConflictError], tuple[tuple[MergeConflict, ...], str]]:
        # The constructor's arguments are not ``args``: pickle (Dask, processes) needs them.
        return type(self), (self.conflicts, self.advice)
