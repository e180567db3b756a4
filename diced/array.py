"""``DicedArray``: numpy-style reads and writes of one array at one version node.

zarr does the indexing and the codecs. diced adds what zarr cannot: negative slice steps,
numpy's casting rules for assigned values, errors from diced's tree, and writes that lose
no concurrent update: every chunk goes through :class:`~diced.chunk_access.ChunkAccess`,
by the fast path (:mod:`diced.chunkio`) for basic selections of plainly compressed arrays,
otherwise through zarr over a :class:`~diced.zarr_store.NodeStore`, whose codec pipeline
hands chunk writes to the same layer.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.indexing import IntDimIndexer, SliceDimIndexer
from zarr.storage import StorePath

from diced import zarr_ome as ome
from diced.chunk_access import ChunkAccess, metadata_of
from diced.chunkio import ChunkCodec, fit_value, read_selection, write_selection
from diced.context import ArrayAddress, StoreContext
from diced.errors import (
    DicedException,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
)
from diced.pyramid import (
    PyramidSpec,
    PyramidUpdate,
    bring_up,
    level_name,
    level_tag,
    plan_spec,
    pyramid_of,
    remove,
)
from diced.selection import SelectionPlan, plan, unbounded_problem
from diced.versioning.graph import VersionGraph
from diced.versioning.history import ChunkChange, chunk_history
from diced.versioning.node import ArrayInfo, NodeView
from diced.zarr_store import NodeStore

__all__ = ["MAX_AXIS_LENGTH", "ArrayDtype", "DicedArray", "check_shape"]

#: Longest axis an array may have (chunk coordinates stay far inside 64-bit integers).
MAX_AXIS_LENGTH = 2**62
#: A read of at most this many chunks at an open node of a remote store fetches their
#: pointers together with the node's record and the array's entry (one round trip). Larger
#: reads list the node's pointers instead (see ChunkAccess.read_each).
PREFETCH_CHUNKS = 16


def _chunks_touched(dim: IntDimIndexer | SliceDimIndexer) -> int:
    """How many chunks one axis of a basic selection touches (at most)."""
    if isinstance(dim, IntDimIndexer):
        return 1
    if dim.stop <= dim.start:
        return 0
    return (dim.stop - 1) // dim.dim_chunk_len - dim.start // dim.dim_chunk_len + 1


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


def check_shape(value: Any, what: str, ndim: int | None = None, *, minimum: int = 0
                ) -> tuple[int, ...]:
    """``value`` as a tuple of axis lengths; :class:`InvalidInputError` naming the fix if not.

    Accepts a sequence of Python or numpy integers (not bools, not floats, however
    whole), each from ``minimum`` to :data:`MAX_AXIS_LENGTH`.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{what} must be a sequence of integers such as "
                                f"({int(value)},), not the integer {value}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        raise InvalidInputError(f"{what} must be a sequence of integers, not {value!r:.80}")
    items = list(value)
    if any(not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_))
           for n in items):
        raise InvalidInputError(f"{what} must hold integers only, got {value!r:.80}")
    out = tuple(int(n) for n in items)
    if ndim is not None and len(out) != ndim:
        raise InvalidInputError(f"{what} needs {ndim} integers, got {out!r}")
    if any(not minimum <= n <= MAX_AXIS_LENGTH for n in out):
        raise InvalidInputError(f"every entry of {what} must be from {minimum} to 2**62, "
                                f"got {out!r}")
    return out


class DicedArray:
    """One array at one version node, read and written with numpy indexing.

    Reads see the node as it is when they run (other processes' writes to an open node
    included). Writes are durable when ``__setitem__`` returns; writes to a locked node or
    through a read-only handle raise :class:`~diced.errors.LockedError`; writes through a
    handle whose array was deleted (or replaced) since raise
    :class:`~diced.errors.NotFoundError`. Partial-chunk writes racing with other writers
    are retried, so no update is lost.

    Get instances from :meth:`DicedRepo.get_array` or :meth:`DicedRepo.create_array`.
    """

    def __init__(self, ctx: StoreContext, view: NodeView, info: ArrayInfo, *,
                 readonly: bool = False) -> None:
        self._ctx = ctx
        self._view = view
        self._readonly = readonly or view.locked
        self._bind(info)

    def _bind(self, info: ArrayInfo) -> None:
        self._info = info
        self._generation = self._view.generation
        self._metadata = metadata_of(info)
        self._access = ChunkAccess(self._view, info, self._metadata, self._ctx.io_pool)
        self._codec = ChunkCodec.for_metadata(self._metadata)
        attrs = info.zarr.get("attributes", {}).get("diced", {})
        self._islabel = bool(attrs.get("islabel3D", False))
        self._unbounded = bool(attrs.get("unbounded", False))
        self._level = level_tag(info.name, info.zarr)
        store = NodeStore(self._ctx, self._view, read_only=self._readonly)
        store.pin(info)
        self._zarr = zarr.Array(AsyncArray(self._metadata, StorePath(store, self.name)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as an address that reopens the store and array where it is unpickled.

        This is how Dask ships a handle to worker processes (:mod:`diced.dask`); each
        process opens the store once, so it must reach the same location. A ``memory://``
        store exists in one process only.
        """
        node = self._ctx.address(self._view.repo, self._view.uuid, self._readonly)
        return (self._ctx.reopen_array, (ArrayAddress(node, self.name),))

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
        """The chunk shape (the inner chunk shape of a sharded array)."""
        return self._zarr.chunks

    @property
    def storage_chunks(self) -> tuple[int, ...]:
        """The shape of one stored object: the chunk shape, or the shard shape if sharded."""
        return self._access.unit

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
        """The underlying zarr array (read-only when this handle is).

        Writes through it are as safe as writes through this handle: partial-chunk
        updates are conditional and retried.
        """
        return self._zarr

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """One name per axis (``("z", "y", "x")`` by default in 3-D); xarray's dimensions."""
        return ome.dimension_names_of(self._info.zarr)

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Physical size of a voxel along each axis, in :attr:`unit` (1 each when unset)."""
        return ome.voxel_size_of(self._info.zarr)

    @property
    def unit(self) -> str | None:
        """OME-NGFF space unit of :attr:`voxel_size` (e.g. ``"nanometer"``), or ``None``."""
        return ome.unit_of(self._info.zarr)

    def set_voxel_size(self, voxel_size: Sequence[float], unit: str | None = None) -> None:
        """Record the voxel size (one positive number per axis) and its unit, at this open version.

        Stored in the array's zarr attributes, so each version keeps its own; the
        OME-NGFF view and neuroglancer take it from there. ``unit=None`` keeps the unit.
        Raises :class:`InvalidInputError` for a bad size or unit and
        :class:`LockedError` at a locked version.
        """
        size = ome.check_voxel_size(voxel_size, self.ndim)
        checked = ome.check_unit(unit)
        self._check_writable()

        def record() -> None:
            current = self._access.current_info()
            self._view.set_array_metadata(self.name, ome.with_scale(current.zarr, size, checked),
                                          current.id)

        self._view.guarded(record)
        self._bind(self._view.array(self.name))

    def get_numdims(self) -> int:
        """Number of dimensions (DICED API)."""
        return self.ndim

    def get_extents(self) -> tuple[slice, ...]:
        """Bounding box of the data written along this version's history.

        One ``slice`` per axis, in voxels, aligned to stored-chunk boundaries (DICED's
        behaviour) and clipped to the shape; ``slice(0, 0)`` on every axis when nothing
        was written.
        """
        self._sync()
        extents = self._access.extents()
        if extents is None:
            return (slice(0, 0),) * self.ndim
        return tuple(slice(lo * c, min(hi * c, n)) for (lo, hi), c, n in
                     zip(extents, self.storage_chunks, self.shape, strict=True))

    def chunk_digests(self) -> dict[tuple[int, ...], str]:
        """Every stored (non-fill) chunk of this version: chunk coordinates → content digest.

        Coordinates are in the storage grid (shards, for a sharded array). Equal digests
        mean equal chunk bytes, so comparing two versions' dictionaries finds the chunks
        that differ without reading any chunk data. Chunks holding only the fill value are
        absent.
        """
        self._sync()
        return {coords: d.hex() for coords, d in self._access.stored().items()}

    def chunk_history(self, coords: Sequence[int]) -> list[ChunkChange]:
        """The versions in this version's ancestry where chunk ``coords`` changed, newest
        first (a blame for chunks; merge parents included).

        ``coords`` are storage-grid coordinates (as :meth:`chunk_digests` lists them). A
        version is listed when the chunk's content there differs from its content in
        every parent. Cost: one manifest read and one O(log n) index lookup per version
        of the ancestry, independent of the array's size.

        Raises
        ------
        InvalidIndexError
            ``coords`` is not a chunk of this array.
        """
        self._sync()
        chunk = tuple(coords) if isinstance(coords, Sequence) else ()
        if not self._access.contains(chunk):
            raise InvalidIndexError(
                f"{coords!r:.80} is not a chunk of array {self.name!r}, whose storage grid "
                f"is {self._access.grid} chunks of {self._access.unit}")
        graph = VersionGraph(self._view.backend, self._view.repo)
        return chunk_history(graph, self._view, self._ctx.page_cache, self.name,
                             tuple(int(c) for c in chunk))

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

    # -- keeping the handle current ----------------------------------------------------------

    def _sync(self) -> None:
        """Follow a lock of the node, and check the array is still this handle's.

        At an open node this re-reads the array's entry: a deleted or replaced array
        raises :class:`NotFoundError`; new metadata (a resize through another handle) is
        taken over.
        """
        self._view.refresh()
        if self._view.generation != self._generation:
            self._readonly = True
            self._bind(self._view.array(self.name))
        elif not self._view.locked:
            self._adopt(self._access.current_info())

    def _sync_for_read(self, selection: Any
                       ) -> tuple[SelectionPlan | None, dict[tuple[int, ...], bytes | None] | None]:
        """:meth:`_sync` before reading ``selection``; returns its plan and its chunks'
        digests when this already made them (``None`` each otherwise).

        At an open node of a remote store, a read of at most :data:`PREFETCH_CHUNKS` chunks
        fetches the node record, the array's entry and the chunks' pointers in one batch
        (one round trip, then one for the blobs). Anything unusual (the node was locked
        meanwhile, new metadata, a selection the planner refuses) falls back to
        :meth:`_sync` and the ordinary read, which raises what it must.
        """
        view = self._view
        if view.locked or not view.backend.remote or self._codec is None \
                or view.generation != self._generation:
            self._sync()
            return None, None
        try:
            p: SelectionPlan | None = self._plan(selection)
        except (DicedException, IndexError, TypeError, ValueError):
            p = None
        if p is None or p.indexer is None or math.prod(
                map(_chunks_touched, p.indexer.dim_indexers)) > PREFETCH_CHUNKS:
            self._sync()
            return None, None
        found = view.refresh_for_read(self._info, [c.chunk_coords for c in p.indexer])
        if found is None:  # locked since: re-bind to the manifest
            self._sync()
            return None, None
        current, digests = found
        current = self._access.same_array(current)
        if current.zarr != self._info.zarr:  # a resize: the plan may differ, read afresh
            self._bind(current)
            return None, None
        return p, digests

    def _adopt(self, current: ArrayInfo) -> None:
        if current.zarr != self._info.zarr:
            self._bind(current)

    def _plan(self, selection: Any) -> SelectionPlan:
        if self.unbounded:
            problem = unbounded_problem(selection, self.ndim)
            if problem is not None:
                box = ", ".join(f"{s.start}:{s.stop}" for s in self.get_extents())
                raise InvalidIndexError(
                    f"array {self.name!r} is unbounded (2**31-1 positions per axis) and "
                    f"{selection!r:.80} has {problem}: select explicit, non-negative bounds "
                    f"on every axis, e.g. arr[{box}] (its extents, from get_extents())"
                )
        return plan(selection, self.shape, self._metadata.chunk_grid)

    # -- reads and writes -------------------------------------------------------------------

    def __getitem__(self, selection: Any) -> Any:
        p, digests = self._sync_for_read(selection)
        if p is None:
            p = self._plan(selection)
        try:
            if p.indexer is not None and self._codec is not None:
                result = read_selection(self._access, self._codec, p.indexer, digests)
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

    def _check_writable(self) -> None:
        if self._level is not None:
            raise InvalidInputError(
                f"array {self.name!r} is level {self._level.level} of the pyramid of "
                f"{self._level.of!r}, computed from it: write to {self._level.of!r} instead "
                "(its levels follow at update_pyramid() or lock_node)"
            )
        if self._readonly:
            raise LockedError(
                f"array {self.name!r} is read-only here (locked version {self._view.uuid} or a "
                "read-only handle): create a branch and write there"
            )

    def __setitem__(self, selection: Any, value: Any) -> None:
        self._check_writable()

        def write(current: ArrayInfo | None) -> None:
            self._adopt(self._access.same_array(current))
            p = self._plan(selection)
            try:
                data = p.to_zarr(fit_value(_as_dtype(value, self.dtype), p.shape))
            except ValueError as exc:
                raise InvalidInputError(f"cannot write at {selection!r:.80}: {exc}") from exc
            self._write(p, data)

        self._view.guarded_array(self.name, write)

    def _write(self, p: SelectionPlan, data: npt.NDArray[Any]) -> None:
        """Write ``data`` (zarr's layout for ``p``) without checking the node state."""
        if p.indexer is not None and self._codec is not None:
            write_selection(self._access, self._codec, p.indexer, data)
        elif p.kind == "basic":
            self._zarr.set_basic_selection(p.selection, data)
        elif p.kind == "orthogonal":
            self._zarr.set_orthogonal_selection(p.selection, data)
        else:
            self._zarr.vindex[p.selection] = data

    def resize(self, *shape: int | Sequence[int]) -> None:
        """Change the shape, at this (open) node.

        Data outside the new shape is dropped: growing again later reads the fill value
        there (unlike plain zarr, which keeps the cut-off part of edge chunks). Costs
        O(stored chunks) of this array, never O(array size).
        """
        first = shape[0] if len(shape) == 1 else None
        requested: Any = first if isinstance(first, Sequence | np.ndarray) else shape
        self._check_writable()
        new = check_shape(requested, "the shape given to resize", self.ndim)

        def resize() -> None:
            self._adopt(self._access.current_info())
            self._resize(new)

        self._view.guarded(resize)
        self._bind(self._view.array(self.name))

    def _resize(self, new: tuple[int, ...]) -> None:
        # zarr's own resize enumerates every chunk of the old shape (unbounded arrays have
        # ~10^22) and keeps the cut-off part of edge chunks; only stored chunks matter here.
        # Stored objects are units of the storage grid (shards, when sharded).
        old, unit = self.shape, self.storage_chunks
        for coords in self._access.stored():
            start = [c * n for c, n in zip(coords, unit, strict=True)]
            if any(s >= n for s, n in zip(start, new, strict=True)):
                self._access.write(coords, None)
                continue
            for axis, (s, n, o) in enumerate(zip(start, new, old, strict=True)):
                if n < o and s + unit[axis] > n:
                    region = [slice(st, min(st + u, o)) for st, u, o in
                              zip(start, unit, old, strict=True)]
                    region[axis] = slice(n, min(s + unit[axis], o))
                    p = plan(tuple(region), self.shape, self._metadata.chunk_grid)
                    self._write(p, np.full(p.shape, self._metadata.fill_value, dtype=self.dtype))
        meta = self._metadata.update_shape(new).to_buffer_dict(default_buffer_prototype())
        self._view.set_array_metadata(self.name, json.loads(meta["zarr.json"].to_bytes()),
                                      self._info.id)

    # -- pyramids ---------------------------------------------------------------------------

    @property
    def pyramid(self) -> PyramidSpec | None:
        """The pyramid this array is level 0 of (levels, factors, method), or ``None``."""
        self._sync()
        return pyramid_of(self.name, self._info.zarr)

    def build_pyramid(self, levels: int | None = None, factors: Any = None,
                      method: str | None = None, *, progress: bool | None = None
                      ) -> list[DicedArray]:
        """Build (or rebuild) a multiscale pyramid of this array at this open node.

        Level ``k`` is the array ``<name>.s<k>`` of the same version, each a downsample
        of the one below; ``lock_node`` keeps them exact in every version. Levels that
        already match are only updated. See docs/pyramids.md.

        Parameters
        ----------
        levels
            Levels above this one; ``None``: until every downsampled axis fits in one
            chunk.
        factors
            Per-axis factor from one level to the next, e.g. ``(1, 2, 2)``; default 2 on
            every axis. A sequence of such tuples gives one per level.
        method
            ``mean``, ``mode``, ``min``, ``max`` or ``nearest``; default ``mode`` for label
            volumes and booleans, ``mean`` otherwise.
        progress
            Show a progress bar (default: when stdout is a terminal).

        Returns the levels, this array first.

        Raises
        ------
        InvalidInputError
            A bad argument, or this array is itself a level.
        AlreadyExistsError
            An array that is not a level holds a level's name.
        LockedError
            The node is locked (branch and build there).
        """
        self._check_writable()
        self._sync()
        spec = plan_spec(self.name, self.shape, self.storage_chunks, self.dtype,
                         self.islabel3D, levels, factors, method)
        self._view.guarded(lambda: bring_up(self._ctx, self._view, self.name, spec, progress))
        return [self.level(k) for k in range(spec.levels + 1)]

    def update_pyramid(self, *, progress: bool | None = None) -> PyramidUpdate:
        """Bring this array's pyramid up to date with its writes so far, at this open node.

        Recomputes only the blocks over chunks this node changed (``lock_node`` does the
        same); returns how many blocks were computed and chunks rewritten per level.

        Raises
        ------
        NotFoundError
            The array has no pyramid (build one with :meth:`build_pyramid`).
        LockedError
            The node is locked.
        """
        self._check_writable()
        spec = self.pyramid
        if spec is None:
            raise NotFoundError(f"array {self.name!r} has no pyramid; build one with "
                                "build_pyramid()")
        return self._view.guarded(
            lambda: bring_up(self._ctx, self._view, self.name, spec, progress)[0])

    def delete_pyramid(self) -> None:
        """Delete this array's pyramid (its level arrays) at this open node."""
        self._check_writable()
        self._view.guarded(lambda: remove(self._view, self.name))
        self._sync()

    def level(self, level: int) -> DicedArray:
        """Level ``level`` of this array's pyramid (0: this array), at the same version.

        Raises :class:`NotFoundError` when the pyramid has no such level.
        """
        spec = self.pyramid
        if level == 0:
            return self
        if spec is None or not isinstance(level, int) or not 0 < level <= spec.levels:
            have = "no pyramid" if spec is None else f"levels 0 to {spec.levels}"
            raise NotFoundError(f"array {self.name!r} has {have}, not level {level!r}")
        info = self._view.array(level_name(self.name, level))
        return DicedArray(self._ctx, self._view, info, readonly=self._readonly)
