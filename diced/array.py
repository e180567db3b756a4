"""``DicedArray``: numpy-style reads and writes of one array at one version node.

zarr does the indexing and the codecs. diced adds what zarr cannot: negative slice steps,
numpy's casting rules for assigned values, errors from diced's tree, and a conflict-free
read-modify-write of partial chunks (see :class:`~diced.zarr_store.NodeStore`).
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.core.array import AsyncArray
from zarr.core.metadata import ArrayV3Metadata
from zarr.storage import StorePath

from diced.chunkio import ChunkCodec, fit_value, read_selection, write_selection
from diced.errors import (
    ConflictError,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
)
from diced.versioning.node import ArrayInfo, NodeView
from diced.zarr_store import ChunkConflict, NodeStore

__all__ = ["ArrayDtype", "DicedArray"]

_CONFLICT_RETRIES = 200


class ArrayDtype(enum.Enum):
    """The dtypes archived DICED offered; any numpy bool/int/uint/float dtype also works."""

    uint8 = np.uint8
    uint16 = np.uint16
    uint32 = np.uint32
    uint64 = np.uint64


def _is_basic(item: Any) -> bool:
    return item is Ellipsis or isinstance(item, slice) or (
        isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)))


def _split_negative_steps(selection: Any,
                          shape: Sequence[int]) -> tuple[Any, list[int], bool]:
    """Rewrite slices with negative steps as positive ones.

    Returns the rewritten selection, the output axes to flip, and whether the selection is
    basic (ints, slices, Ellipsis). zarr accepts only positive steps; numpy's ``a[::-2]``
    is the same elements as a positive-step slice, reversed. Selections that are not basic
    are returned untouched for zarr.
    """
    sel = selection if isinstance(selection, tuple) else (selection,)
    if not all(_is_basic(s) for s in sel):
        return selection, [], False
    if sum(s is Ellipsis for s in sel) > 1:
        raise InvalidIndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in sel:
        i = sel.index(Ellipsis)
        sel = sel[:i] + (slice(None),) * (len(shape) - len(sel) + 1) + sel[i + 1:]
    if len(sel) > len(shape):
        raise InvalidIndexError(
            f"too many indices: the array has {len(shape)} dimensions but {len(sel)} were given"
        )
    out: list[Any] = []
    flips: list[int] = []
    axis = 0
    for s, n in zip(sel, shape, strict=False):
        if isinstance(s, slice) and s.step is not None and s.step < 0:
            start, stop, step = s.indices(n)
            count = len(range(start, stop, step))
            last = start + step * (count - 1)
            out.append(slice(last, start + 1, -step) if count else slice(0, 0))
            flips.append(axis)
        else:
            out.append(s)
        if isinstance(s, slice):
            axis += 1
    return tuple(out), flips, True


def _as_dtype(value: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """``value`` converted exactly as ``numpy_array[...] = value`` would convert it."""
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
                 readonly: bool = False) -> None:
        self._view = view
        self._pool = pool
        self._readonly = readonly or view.locked
        self._bind(info)

    def _bind(self, info: ArrayInfo) -> None:
        self._info = info
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
        extents = self._view.extents(self._info)
        if extents is None:
            return (slice(0, 0),) * self.ndim
        return tuple(slice(lo * c, hi * c) for (lo, hi), c in zip(extents, self.chunks,
                                                                   strict=True))

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

    def __getitem__(self, selection: Any) -> Any:
        sel, flips, basic = _split_negative_steps(selection, self.shape)
        try:
            if basic and self._codec is not None:
                result = read_selection(self._view, self._info, self._metadata, self._codec,
                                        sel, self._pool)
            else:
                result = self._zarr[sel]
        except IndexError as exc:
            raise InvalidIndexError(f"bad index {selection!r} for shape {self.shape}: {exc}") \
                from exc
        except (TypeError, ValueError) as exc:
            raise InvalidIndexError(f"unsupported index {selection!r}: {exc}") from exc
        return np.flip(np.asarray(result), tuple(flips)) if flips else result

    def __setitem__(self, selection: Any, value: Any) -> None:
        if self._readonly:
            raise LockedError(
                f"array {self.name!r} is read-only here (locked version {self._view.uuid} or a "
                "read-only handle): create a branch and write there"
            )
        sel, flips, basic = _split_negative_steps(selection, self.shape)
        data = _as_dtype(value, self.dtype)
        try:
            if flips:
                data = np.flip(fit_value(data, self._selection_shape(sel)), tuple(flips))
            if basic and self._codec is not None:
                codec = self._codec
                self._view.guarded(lambda: write_selection(
                    self._view, self._info, self._metadata, codec, sel, data, self._pool))
            else:
                self._view.guarded(lambda: self._write_with_zarr(sel, data))
        except IndexError as exc:
            raise InvalidIndexError(f"bad index {selection!r} for shape {self.shape}: {exc}") \
                from exc
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"cannot write at {selection!r}: {exc}") from exc

    def _selection_shape(self, sel: Any) -> tuple[int, ...]:
        shape = []
        for s, n in zip(sel, self.shape, strict=False):
            if isinstance(s, slice):
                shape.append(len(range(*s.indices(n))))
        shape.extend(self.shape[len(sel):])
        return tuple(shape)

    def _write_with_zarr(self, sel: Any, data: npt.NDArray[Any]) -> None:
        """Write through zarr's pipeline (fancy selections, codecs the fast path lacks)."""
        for attempt in range(_CONFLICT_RETRIES):
            writer = self._open(NodeStore(self._view, session=True))
            try:
                writer[sel] = data
                return
            except ChunkConflict:
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
        raise ConflictError(
            f"array {self.name!r}: the same chunks kept changing under concurrent writers "
            f"({_CONFLICT_RETRIES} attempts); try again"
        )

    def resize(self, *shape: int | Sequence[int]) -> None:
        """Change the shape; chunks outside the new shape are dropped at this node."""
        first = shape[0] if len(shape) == 1 else None
        new_shape: tuple[Any, ...] = tuple(first) if isinstance(first, Sequence) else shape
        if self._readonly:
            raise LockedError(f"array {self.name!r} is read-only here; branch and resize there")
        if len(new_shape) != self.ndim or any(not isinstance(n, (int, np.integer)) or n < 0
                                              for n in new_shape):
            raise InvalidInputError(
                f"resize needs {self.ndim} non-negative integers, got {new_shape!r}"
            )

        def resize() -> None:
            self._open(NodeStore(self._view)).resize(tuple(int(n) for n in new_shape))

        self._view.guarded(resize)
        self._bind(self._view.array(self.name))
