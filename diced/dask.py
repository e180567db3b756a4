"""Dask arrays over diced arrays: read any version, write an open one from many workers.

Needs the ``dask`` extra (``pip install 'diced[dask]'``). Array handles pickle as an
address (:class:`diced.context.ArrayAddress`), so with ``dask.distributed`` each worker
process reopens the store itself: every worker must reach the store's location. See
``docs/dask.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dask.array as da
from dask.array.core import normalize_chunks
from dask.base import tokenize

from diced.array import DicedArray
from diced.errors import InvalidInputError, LockedError, raced_lock

__all__ = ["store_dask", "to_dask"]


def to_dask(arr: DicedArray, chunks: Sequence[int] | None = None) -> da.Array:
    """A dask array reading ``arr`` lazily, one task per dask chunk.

    Parameters
    ----------
    arr
        Any array handle, at a locked or an open version. A locked version's content is
        fixed; an open version is read as it is when each task runs.
    chunks
        Dask chunk shape. Multiples of ``arr.chunks`` make each task read whole diced
        chunks. The default picks such multiples near dask's ``array.chunk-size`` setting
        (128 MiB per task unless configured): tasks much smaller than that spend more time
        in scheduling than in reading.

    Raises
    ------
    InvalidInputError
        ``arr`` is unbounded (it would have ~10¹⁹ dask chunks per axis pair), or ``chunks``
        does not match its dimensions.
    """
    if arr.unbounded:
        raise InvalidInputError(
            f"array {arr.name!r} is unbounded; read a bounded region first, e.g. "
            "dask.array.from_array(arr[arr.get_extents()]) for data that fits in memory, "
            "or create the array with a shape"
        )
    if chunks is None:
        dask_chunks: tuple[Any, ...] = normalize_chunks(  # type: ignore[no-untyped-call]
            "auto", arr.shape, dtype=arr.dtype, previous_chunks=arr.chunks)
    else:
        dask_chunks = tuple(int(c) for c in chunks)
        if len(dask_chunks) != arr.ndim or any(c < 1 for c in dask_chunks):
            raise InvalidInputError(f"chunks must be {arr.ndim} positive integers, "
                                    f"got {chunks!r}")
    # A locked version never changes, so its graph can be named by content; an open one
    # must not reuse results computed from an earlier state.
    version = "locked" if arr.locked else uuid.uuid4().hex
    name = "diced-" + tokenize(repr(arr), arr.__reduce__(), dask_chunks, version)
    result: da.Array = da.from_array(  # type: ignore[no-untyped-call]
        arr, chunks=dask_chunks, name=name, lock=False, asarray=True, fancy=False,
        inline_array=False)
    return result


def store_dask(darr: da.Array, arr: DicedArray) -> None:
    """Compute ``darr`` and write it into ``arr`` (an open version), all chunks in parallel.

    Each dask chunk is written by the worker that computed it. Dask chunks need not align
    with ``arr.chunks``: diced chunks shared by several dask chunks are merged with
    compare-and-swap, so concurrent partial writes lose nothing. Aligned chunks write
    fastest (no read-modify-write). Returns when every chunk is durable.

    Raises
    ------
    InvalidInputError
        The shapes differ.
    LockedError
        ``arr`` is read-only (a locked version or a read-only handle).
    ConflictError
        The version was locked (by another process) before or while the write ran: the
        dask chunks written before the lock may be in the locked version.
    """
    if tuple(darr.shape) != arr.shape:
        raise InvalidInputError(f"cannot store a dask array of shape {darr.shape} into "
                                f"array {arr.name!r} of shape {arr.shape}")
    if arr.locked:
        raise LockedError(f"array {arr.name!r} is read-only here (a locked version or a "
                          "read-only handle): create a branch and write there")
    # Each dask chunk is its own guarded write: a lock between two of them must not read
    # as "nothing was written".
    with raced_lock(f"a dask write into array {arr.name!r}"):
        da.store(darr, arr, lock=False, compute=True)
