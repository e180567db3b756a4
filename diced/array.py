"""``DicedArray``: numpy-style reads and writes of one array at one version node.

zarr does the indexing and the codecs. diced adds what zarr cannot: negative slice steps,
numpy's casting rules for assigned values, errors from diced's tree, and a conflict-free
read-modify-write of partial chunks (see :class:`~diced.zarr_store.NodeStore`).
"""

from __future__ import annotations

import enum
import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import StorePath

from diced.chunkio import ChunkCodec, fit_value, read_selection, write_selection
from diced.errors import (
    ConflictError,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
)
from diced.reopen import ArrayAddress, reopen_array
from diced.selection import SelectionPlan, plan
from diced.versioning.node import ArrayInfo, NodeView
from diced.zarr_store import ChunkConflict, NodeStore

if TYPE_CHECKING:
    from diced.store import DicedStore

__all__ = ["ArrayDtype", "DicedArray"]

_CONFLICT_RETRIES = 200


class ArrayDtype(enum.Enum):
    """The dtypes archived DICED offered; any numpy bool/int/uint/float dtype also works."""

    uint8 = np.uint8
    uint16 = np.uint16
    uint32 = np.uint32
    uint64 = np.uint64


def _as_dtype(value: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """``value`` converted exactly as ``numpy_array[...] = value`` would convert it.

    An array that already has ``dtype`` is returned as it is (it is only read), so a
    bulk write neither copies its input nor doubles its memory.
    """
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        return value
    try:
        src = value if isinstance(value, np.ndarray) else np.asarray(value)
        out = np.empty(src.shape, dtype=dtype)
        out[...] = value
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"cannot store {value!r:.80} in an array of {dtype}: {exc}") \
            from exc
    return out


class DicedArray:
    """One array at one version node, read and written with numpy indexing.

    Reads see the node as it is when they run (other processes' writes to an open node
    included). Writes are durable when ``__setitem__`` returns; writes to a locked node or
    through a read-only handle raise :class:`~diced.errors.LockedError`. Partial-chunk
    writes racing with other writers are retried, so no update is lost.

    Get instances from :meth:`DicedRepo.get_array` or :meth:`DicedRepo.create_array`.
    """

    def __init__(self, view: NodeView, info: ArrayInfo, pool: ThreadPoolExecutor, *,
                 readonly: bool = False, store: DicedStore | None = None) -> None:
        self._view = view
        self._pool = pool
        self._store = store
        self._readonly = readonly or view.locked
        self._bind(info)

    def _bind(self, info: ArrayInfo) -> None:
        self._info = info
        self._generation = self._view.generation
        self._metadata = ArrayV3Metadata.from_dict(dict(info.zarr))
        self._codec = ChunkCodec.for_metadata(self._metadata)
        attrs = info.zarr.get("attributes", {}).get("diced", {})
        self._islabel = bool(attrs.get("islabel3D", False))
        self._unbounded = bool(attrs.get("unbounded", False))
        self._zarr = self._open(NodeStore(self._view, read_only=self._readonly))

    def _open(self, store: NodeStore) -> zarr.Array[Any]:
        """A zarr array of this array's identity and metadata over ``store``."""
        store.pin(self._info)
        return zarr.Array(AsyncArray(self._metadata, StorePath(store, self.name)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as an address that reopens the store and array where it is unpickled.

        This is how Dask ships a handle to worker processes (:mod:`diced.dask`); each
        process opens the store once (:mod:`diced.reopen`), so it must reach the same
        location. A ``memory://`` store exists in one process only.
        """
        if self._store is None:
            raise InvalidInputError(f"array {self.name!r} was not opened through a DicedStore "
                                    "and cannot be pickled; get it from DicedRepo.get_array")
        return (reopen_array, (ArrayAddress.of(self._store, self._view.repo, self._view.uuid,
                                               self.name, self._readonly),))

    def __repr__(self) -> str:
        state = "locked" if self.locked else "open"
        return (f"<DicedArray {self.name!r} shape={self.shape} dtype={self.dtype} "
                f"chunks={self.chunks} at {state} version {self._view.uuid[:8]}>")

    # -- properties -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self._zarr.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._zarr.dtype

    @property
    def ndim(self) -> int:
        return self._zarr.ndim

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._zarr.chunks

    @property
    def locked(self) -> bool:
        """True when this handle cannot write (locked node or read-only handle)."""
        return self._readonly

    @property
    def numdims(self) -> int:
        """DICED's name for :attr:`ndim`."""
        return self.ndim

    @property
    def islabel3D(self) -> bool:
        """Whether the array was created as a 3-D label volume (for the viewer)."""
        return self._islabel

    @property
    def unbounded(self) -> bool:
        """Whether the array was created without a shape (2³¹−1 per axis, sparse)."""
        return self._unbounded

    @property
    def zarr(self) -> zarr.Array[Any]:
        """The underlying zarr array (read-only when this handle is)."""
        return self._zarr

    def get_numdims(self) -> int:
        """Number of dimensions (DICED API)."""
        return self.ndim

    def get_extents(self) -> tuple[slice, ...]:
        """Chunk-aligned bounding box of the data written along this version's history.

        One ``slice`` per axis, in voxels, aligned to chunk boundaries (DICED's
        behaviour); ``slice(0, 0)`` on every axis when nothing was written.
        """
        self._follow_lock()
        extents = self._view.extents(self._info)
        if extents is None:
            return (slice(0, 0),) * self.ndim
        return tuple(slice(lo * c, hi * c) for (lo, hi), c in zip(extents, self.chunks,
                                                                   strict=True))

    def chunk_digests(self) -> dict[tuple[int, ...], str]:
        """Every stored (non-fill) chunk of this version: chunk coordinates → content digest.

        Equal digests mean equal chunk bytes, so comparing two versions' dictionaries finds
        the chunks that differ without reading any chunk data. Chunks holding only the fill
        value are absent.
        """
        self._follow_lock()
        return {tuple(int(c) for c in key.split("/")[1:]): d.hex()
                for key, d in self._view.chunks(self._info).items()}

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        if self.unbounded:
            raise InvalidInputError(
                f"array {self.name!r} is unbounded; read a region such as "
                f"arr[arr.get_extents()] instead of the whole array"
            )
        data = np.asarray(self[...])
        return data if dtype is None else data.astype(dtype)

    # -- reads and writes -------------------------------------------------------------------

    def _plan(self, selection: Any) -> SelectionPlan:
        return plan(selection, self.shape, self._metadata.chunk_grid)

    def _follow_lock(self) -> None:
        """If the node was locked since this handle was made, read its locked content."""
        self._view.refresh()
        if self._view.generation != self._generation:
            self._readonly = True
            self._bind(self._view.array(self.name))

    def __getitem__(self, selection: Any) -> Any:
        self._follow_lock()
        p = self._plan(selection)
        try:
            if p.indexer is not None and self._codec is not None:
                result = read_selection(self._view, self._info, self._metadata, self._codec,
                                        p.indexer, self._pool)
            elif p.kind == "basic":
                result = self._zarr.get_basic_selection(p.selection)
            elif p.kind == "orthogonal":
                result = self._zarr.get_orthogonal_selection(p.selection)
            else:
                result = self._zarr.vindex[p.selection]
        except IndexError as exc:
            raise InvalidIndexError(f"bad index {selection!r} for shape {self.shape}: {exc}") \
                from exc
        return p.to_numpy(result)

    def __setitem__(self, selection: Any, value: Any) -> None:
        if self._readonly:
            raise LockedError(
                f"array {self.name!r} is read-only here (locked version {self._view.uuid} or a "
                "read-only handle): create a branch and write there"
            )
        p = self._plan(selection)
        try:
            data = p.to_zarr(fit_value(_as_dtype(value, self.dtype), p.shape))
        except ValueError as exc:
            raise InvalidInputError(f"cannot write at {selection!r}: {exc}") from exc
        self._view.guarded(lambda: self._write(p, data))

    def _write(self, p: SelectionPlan, data: npt.NDArray[Any]) -> None:
        """Write ``data`` (zarr's layout for ``p``) without checking the node state."""
        if p.indexer is not None and self._codec is not None:
            write_selection(self._view, self._info, self._metadata, self._codec, p.indexer,
                            data, self._pool)
            return
        # zarr's pipeline reads and writes each chunk through a session store that turns
        # every chunk write into a compare-and-swap; a lost race retries the selection.
        for attempt in range(_CONFLICT_RETRIES):
            session = NodeStore(self._view, session=True)
            writer = self._open(session)
            try:
                if p.kind == "basic":
                    writer.set_basic_selection(p.selection, data)
                elif p.kind == "orthogonal":
                    writer.set_orthogonal_selection(p.selection, data)
                else:
                    writer.vindex[p.selection] = data
                return
            except ChunkConflict:
                session.abandon()
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
            except BaseException:
                session.abandon()
                raise
        raise ConflictError(
            f"array {self.name!r}: the same chunks kept changing under concurrent writers "
            f"({_CONFLICT_RETRIES} attempts); try again"
        )

    def resize(self, *shape: int | Sequence[int]) -> None:
        """Change the shape, at this (open) node.

        Data outside the new shape is dropped: growing again later reads the fill value
        there (unlike plain zarr, which keeps the cut-off part of edge chunks). Costs
        O(stored chunks) of this array, never O(array size).
        """
        first = shape[0] if len(shape) == 1 else None
        new_shape: tuple[Any, ...] = tuple(first) if isinstance(first, Sequence) else shape
        if self._readonly:
            raise LockedError(f"array {self.name!r} is read-only here; branch and resize there")
        if len(new_shape) != self.ndim or any(not isinstance(n, (int, np.integer)) or n < 0
                                              for n in new_shape):
            raise InvalidInputError(
                f"resize needs {self.ndim} non-negative integers, got {new_shape!r}"
            )
        new = tuple(int(n) for n in new_shape)
        self._view.guarded(lambda: self._resize(new))
        self._bind(self._view.array(self.name))

    def _resize(self, new: tuple[int, ...]) -> None:
        # zarr's own resize enumerates every chunk of the old shape (unbounded arrays have
        # ~10^22) and keeps the cut-off part of edge chunks; only stored chunks matter here.
        old, chunks = self.shape, self.chunks
        for key in self._view.chunks(self._info):
            coords = [int(c) for c in key.split("/")[1:]]
            start = [c * n for c, n in zip(coords, chunks, strict=True)]
            if any(s >= n for s, n in zip(start, new, strict=True)):
                self._view.write_chunk(self._info, key, None)
                continue
            for axis, (s, n, o) in enumerate(zip(start, new, old, strict=True)):
                if n < o and s + chunks[axis] > n:
                    region = [slice(st, min(st + c, o)) for st, c, o in
                              zip(start, chunks, old, strict=True)]
                    region[axis] = slice(n, min(s + chunks[axis], o))
                    p = self._plan(tuple(region))
                    self._write(p, np.full(p.shape, self._metadata.fill_value, dtype=self.dtype))
        meta = self._metadata.update_shape(new).to_buffer_dict(default_buffer_prototype())
        self._view.set_array_metadata(self.name, json.loads(meta["zarr.json"].to_bytes()))
