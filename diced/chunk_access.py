"""The one chunk-access layer: every read and write of an array's chunks goes through here.

The fast path (:mod:`diced.chunkio`), the zarr Store (:mod:`diced.zarr_store`) with its
codec pipeline (:mod:`diced.zarr_pipeline`), resize and the HTTP API all read and write
chunks through a :class:`ChunkAccess`. It owns:

* chunk reads: the encoded bytes of one chunk, verified against their digest;
* whole-chunk writes: the blob, then the pointer, unconditionally (the new bytes do not
  depend on the old ones, so the last writer wins, as with any store);
* partial-chunk writes: read the chunk and its version token, merge, then write the
  pointer only if that version is still current, retrying with back-off until it is
  (:meth:`ChunkAccess.update`): concurrent writers of disjoint voxels never lose an update;
* the write guard: the node must be open, and the array must still be the one the caller
  opened (a handle on an array deleted or replaced since then must not write into a
  version where nothing can read it back);
* running per-chunk work on the I/O pool.

A chunk is a coordinate tuple in the array's *storage grid* (the shard grid for a sharded
array), validated here against the array's shape.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.metadata import ArrayV3Metadata

from diced.errors import ConflictError, InvalidInputError, NotFoundError
from diced.versioning.node import ArrayInfo, ChunkState, NodeView

__all__ = ["LIST_POINTERS_AT", "RETRIES", "ChunkAccess", "metadata_of", "slice_bytes",
           "storage_grid"]

T = TypeVar("T")
Coords = tuple[int, ...]

#: Attempts of one partial-chunk write against concurrent writers before giving up.
RETRIES = 1000
#: A read at an open node of a remote store lists the node's pointers (one request per
#: first coordinate touched) instead of reading one pointer per chunk when it touches at
#: least this many chunks per listing.
LIST_POINTERS_AT = 4


def storage_grid(meta: ArrayV3Metadata) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(unit shape, grid shape)`` of the objects an array is stored as.

    The unit is the chunk shape of the metadata's chunk grid, which for a sharded array is
    the shard shape (the inner chunks live inside the shard's bytes).
    """
    unit = tuple(meta.chunk_grid.chunk_shape)  # type: ignore[attr-defined]
    grid = tuple(math.ceil(n / c) for n, c in zip(meta.shape, unit, strict=True))
    return unit, grid


def slice_bytes(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """The part of ``data`` a zarr byte request names (all of it for ``None``)."""
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    if isinstance(byte_range, SuffixByteRequest):
        return data[len(data) - byte_range.suffix:] if byte_range.suffix else b""
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")


def _backoff(attempt: int) -> None:
    # Jittered and growing: racing writers of one chunk spread out instead of colliding
    # again in lockstep.
    time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))


class ChunkAccess:
    """Reads and writes of the chunks of one array at one node.

    Parameters
    ----------
    view
        The node.
    info
        The array as the caller opened it (its identity is checked before every write).
    meta
        The array's zarr metadata (parsed from ``info.zarr``).
    pool
        Threads for per-chunk work; codecs and I/O release the GIL.
    """

    def __init__(self, view: NodeView, info: ArrayInfo, meta: ArrayV3Metadata,
                 pool: ThreadPoolExecutor) -> None:
        self.view = view
        self.info = info
        self.meta = meta
        self.pool = pool
        self.unit, self.grid = storage_grid(meta)

    def __repr__(self) -> str:
        return f"<ChunkAccess {self.info.name!r} at {self.view.uuid[:8]}>"

    # -- coordinates ------------------------------------------------------------------------

    def contains(self, coords: Coords) -> bool:
        """Whether ``coords`` name a chunk of the array's storage grid."""
        return len(coords) == len(self.grid) and all(
            isinstance(c, int) and 0 <= c < n for c, n in zip(coords, self.grid, strict=True))

    def _checked(self, coords: Coords) -> Coords:
        if not self.contains(coords):
            raise InvalidInputError(
                f"chunk {coords!r} is outside array {self.info.name!r}, whose storage grid "
                f"is {self.grid} chunks of {self.unit}"
            )
        return coords

    # -- reads ------------------------------------------------------------------------------

    def state(self, coords: Coords) -> ChunkState:
        """The chunk's digest and this node's pointer version, now."""
        return self.view.chunk_state(self.info, self._checked(coords))

    def read(self, coords: Coords) -> bytes | None:
        """The chunk's encoded bytes (verified), or ``None`` for the fill value."""
        return self.read_state(coords)[0]

    def read_state(self, coords: Coords) -> tuple[bytes | None, ChunkState]:
        """The chunk's encoded bytes (``None``: fill value) and the state they belong to."""
        state = self.state(coords)
        return (None if state.digest is None else self.view.read_blob(state.digest)), state

    def read_each(self, coords_list: Iterable[Coords],
                  use: Callable[[Coords, bytes | None], None],
                  digests: Mapping[Coords, bytes | None] | None = None) -> None:
        """Read many chunks: ``use(coords, bytes or None)`` for each, on the I/O pool.

        At an open node of a remote store, a read of many chunks first lists the node's
        pointers among them (one listing per first coordinate touched) and reads only those
        pointers; every other chunk comes from the parent's tree, which needs no request.
        A pointer created after the listing, by a write that had not returned when this
        read began, may be missed; one that existed before is always found. ``digests``,
        when it has every chunk, are their digests already read (by
        :meth:`NodeView.refresh_for_read`).
        """
        todo = [self._checked(c) for c in coords_list]
        if digests is not None and all(c in digests for c in todo):
            resolve: Callable[[Coords], bytes | None] = digests.__getitem__
        else:
            resolve = self._resolver(todo)

        def work(coords: Coords) -> None:
            found = resolve(coords)
            use(coords, None if found is None else self.view.read_blob(found))

        self.run(work, todo)

    def _resolver(self, todo: list[Coords]) -> Callable[[Coords], bytes | None]:
        """How to find the digest of each chunk of a read of ``todo``."""
        view, info = self.view, self.info
        if view.locked:
            return lambda coords: view.base_digest(info, coords)
        firsts = {c[0] for c in todo} if info.ndim >= 2 else None
        listings = 1 if firsts is None else len(firsts)
        if not view.backend.remote or len(todo) < LIST_POINTERS_AT * listings:
            return lambda coords: view.chunk_state(info, coords).digest
        if firsts is None:
            written = view.pointer_coords(info)
        else:  # one listing per slab, all in flight at once
            slabs: list[set[Coords]] = []
            self.run(lambda first: slabs.append(view.pointer_coords(info, {first})),
                     sorted(firsts))
            written = set().union(*slabs)

        def resolve(coords: Coords) -> bytes | None:
            if coords in written:
                return view.chunk_state(info, coords).digest
            return view.base_digest(info, coords)

        return resolve

    def stored(self) -> dict[Coords, bytes]:
        """Every stored (non-fill) chunk: coordinates → digest of its bytes."""
        return self.view.chunks(self.info)

    def extents(self) -> tuple[tuple[int, int], ...] | None:
        """Chunk-coordinate bounding box of every chunk written along this history."""
        return self.view.extents(self.info)

    # -- writes -----------------------------------------------------------------------------

    def write(self, coords: Coords, data: bytes | None) -> None:
        """Replace the whole chunk by ``data`` (``None``: the fill value)."""
        self.view.publish_chunk(self.info, self._checked(coords), data)

    def update(self, coords: Coords, merge: Callable[[bytes | None], bytes | None]) -> None:
        """Read-modify-write one chunk so that no concurrent update is lost.

        ``merge(current bytes or None) -> new bytes or None`` must be a pure function of
        its argument (it may run several times). The write lands only if the chunk did not
        change since it was read; otherwise it is read, merged and tried again.

        Raises
        ------
        ConflictError
            The chunk kept changing for :data:`RETRIES` attempts.
        """
        self._checked(coords)
        for attempt in range(RETRIES):
            current, state = self.read_state(coords)
            new = merge(current)
            if new == current:
                return  # nothing changes (writing the value already there)
            if self.view.publish_chunk(self.info, coords, new, state.token):
                return
            _backoff(attempt)
        raise ConflictError(
            f"chunk {coords} of array {self.info.name!r} kept changing under concurrent "
            f"writers ({RETRIES} attempts); try again"
        )

    def guarded(self, write: Callable[[], T]) -> T:
        """Run ``write`` if the node is open and the array is still this handle's.

        Raises
        ------
        LockedError
            The node takes no writes (nothing was written).
        NotFoundError
            The array was deleted, or deleted and created again, since it was opened.
        ConflictError
            The node was locked while the write ran.
        """
        def checked(current: ArrayInfo | None) -> T:
            self.same_array(current)
            return write()

        return self.view.guarded_array(self.info.name, checked)

    def current_info(self) -> ArrayInfo:
        """The array as stored now, if it is still the one this access was opened on.

        Its metadata may be newer (a resize); its identity is the same.

        Raises
        ------
        NotFoundError
            The array was deleted, or deleted and created again, since.
        """
        return self.same_array(self.view.find_array(self.info.name))

    def same_array(self, current: ArrayInfo | None) -> ArrayInfo:
        """``current`` (the array as stored now), if it is still the one this access was
        opened on; else :class:`NotFoundError`, as :meth:`current_info`."""
        if current is None or current.id != self.info.id:
            raise NotFoundError(
                f"array {self.info.name!r} was deleted (or deleted and created again) in "
                f"version {self.view.uuid} after this handle was opened; nothing was "
                f"read or written. Get the array again with get_array({self.info.name!r})"
            )
        return current

    # -- many chunks ------------------------------------------------------------------------

    def run(self, work: Callable[[T], None], items: Iterable[T]) -> None:
        """Run ``work(item)`` for every item on the I/O pool and in the calling thread;
        raise the first failure.

        After a failure (or a ``KeyboardInterrupt`` in the caller) no further item
        starts, and every item already started finishes before the failure is raised, so
        a write that raised never lands afterwards.
        """
        todo = list(items)
        if len(todo) == 1:
            work(todo[0])
            return
        # The threads take items one at a time from one iterator (next() on a list
        # iterator is atomic under the GIL), so none idles while others have a queue, and
        # the caller takes items too rather than sleeping until the pool is done: one
        # thread hand-off fewer per read, which the GIL made expensive (docs/benchmarks.md).
        pending = iter(todo)
        failed = False

        def drain() -> None:
            nonlocal failed
            try:
                for item in pending:
                    if failed:
                        return
                    work(item)
            except BaseException:
                failed = True
                raise

        futures = [self.pool.submit(drain)
                   for _ in range(min(len(todo), self.pool._max_workers) - 1)]
        try:
            drain()
        finally:
            for future in futures:
                future.cancel()  # not started yet: nothing left for it to take
            wait(futures)
        for future in futures:
            if not future.cancelled():
                future.result()


def metadata_of(info: ArrayInfo) -> ArrayV3Metadata:
    """The zarr metadata object of ``info``."""
    zarr_meta: Mapping[str, Any] = info.zarr
    return ArrayV3Metadata.from_dict(dict(zarr_meta))
