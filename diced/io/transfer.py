"""``import_array`` and ``export_array``: volumes in and out of a version, streamed in slabs.

Both go through the public API only (:class:`~diced.DicedRepo`, :class:`~diced.DicedArray`):
a slab is one ``arr[box]`` read or ``arr[box] = data`` write, which diced turns into
parallel whole-chunk reads and writes.

Resuming an import. A re-run of the same import skips what the first run already stored.
:meth:`~diced.DicedArray.chunk_digests` (read once, before any write) says which chunks
of the target are stored. A slab none of whose chunks is stored is written whole (one
bulk write, the fast path of a fresh import). A slab with stored chunks is read back
once and compared with the source chunk by chunk; only the chunks that differ are
written. Reading back costs one fetch and one decompression per stored chunk, which is
cheaper than the alternative of encoding the source chunk to compare digests
(compression is several times slower than decompression) and never depends on the
encoder producing the same bytes twice. A chunk that is not stored reads as the fill
value, so a source chunk equal to it is skipped too. A finished import run again writes
nothing.

Where a later ``pyramid`` option hooks in: after the last slab, ``import_array`` returns
the array handle; a pyramid is then brought up to date from level 0 (which records the
blocks the import dirtied) by one call on that handle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise, product
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.array import DicedArray
from diced.errors import (
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    raced_lock,
)
from diced.io.formats import open_destination, open_source
from diced.io.slabs import Slab, plan_slabs, stream
from diced.io.source import Source
from diced.progress import TransferProgress
from diced.repo import DicedRepo

__all__ = ["export_array", "import_array"]

#: Default bound on the bytes of the slabs in flight (each worker holds one slab).
DEFAULT_MEMORY = 512 * 2**20
#: Default number of slabs in flight.
DEFAULT_WORKERS = 3


def _workers(workers: int | None, memory: int | None, slab_bytes: int) -> int:
    """Slabs in flight: ``workers`` (default 3), fewer if slabs are large, at least one."""
    wanted = DEFAULT_WORKERS if workers is None else int(workers)
    if wanted < 1:
        raise InvalidInputError(f"workers must be at least 1, not {workers!r}")
    budget = DEFAULT_MEMORY if memory is None else int(memory)
    return max(1, min(wanted, budget // max(1, slab_bytes)))


def _offset(offset: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if offset is None:
        return (0,) * ndim
    values = tuple(offset)
    if len(values) != ndim or any(not isinstance(v, (int, np.integer)) or v < 0
                                  for v in values):
        raise InvalidInputError(f"offset must be {ndim} non-negative integers (one per axis "
                                f"of the source), not {offset!r}")
    return tuple(int(v) for v in values)


def _target(repo: DicedRepo, name: str, src: Source, offset: tuple[int, ...],
            chunks: Sequence[int] | None, labels: bool) -> DicedArray:
    """The array to import into: ``name`` if it exists (checked), else a new one."""
    if repo.readonly or repo.locked:
        raise LockedError(f"version {repo.uuid} of repo {repo.name!r} is locked (or opened "
                          "read-only): create a branch and import there")
    if name in {n for n, _ in repo.list_instances()}:
        arr = repo.get_array(name)
        if arr.ndim != len(src.shape):
            raise InvalidInputError(f"array {name!r} has {arr.ndim} dimensions but the source "
                                    f"{src.description} has {len(src.shape)}")
        if not np.can_cast(src.dtype, arr.dtype, "safe"):
            raise InvalidInputError(f"array {name!r} holds {arr.dtype}; the source's "
                                    f"{src.dtype} values do not all fit; import into a new "
                                    "array instead")
        if chunks is not None and tuple(chunks) != arr.chunks:
            raise InvalidInputError(f"array {name!r} exists with chunks {arr.chunks}, not "
                                    f"{tuple(chunks)}")
        if labels and not arr.islabel3D:
            raise InvalidInputError(f"array {name!r} exists and is not a label array")
        end = tuple(o + n for o, n in zip(offset, src.shape, strict=True))
        if any(e > n for e, n in zip(end, arr.shape, strict=True)):
            raise InvalidIndexError(f"the source ({src.shape} at offset {offset}) does not fit "
                                    f"in array {name!r} of shape {arr.shape}; resize it or "
                                    "change the offset")
        return arr
    dtype = src.dtype
    if labels:
        if not np.can_cast(src.dtype, np.uint64, "safe"):
            raise InvalidInputError(f"labels must be unsigned integers; the source holds "
                                    f"{src.dtype}")
        dtype = np.dtype(np.uint64)
    shape = tuple(o + n for o, n in zip(offset, src.shape, strict=True))
    return repo.create_array(name, dtype, shape=shape, chunks=chunks, islabel3D=labels)


def _chunk_boxes(box: tuple[slice, ...], chunks: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """The parts of ``box`` cut by the chunk grid, in box-relative coordinates."""
    axes = []
    for s, c in zip(box, chunks, strict=True):
        edges = [s.start, *range((s.start // c + 1) * c, s.stop, c), s.stop]
        axes.append([slice(a - s.start, b - s.start) for a, b in pairwise(edges)])
    return [tuple(parts) for parts in product(*axes)]


def _chunk_of(box: tuple[slice, ...], part: tuple[slice, ...],
              chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((s.start + p.start) // c for s, p, c in zip(box, part, chunks, strict=True))


def _same_bits(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """Bit-for-bit equality (so NaN equals the same NaN, and -0.0 differs from 0.0)."""
    as_bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a.view(as_bits), b.view(as_bits)))


def _all_fill(data: npt.NDArray[Any]) -> bool:
    """Whether ``data`` is all diced's fill value, 0 (a -0.0 is data: diced stores it)."""
    return not data.any() and not (data.dtype.kind == "f" and np.signbit(data).any())


def import_array(repo: DicedRepo, name: str, source: Any, *,
                 offset: Sequence[int] | None = None, chunks: Sequence[int] | None = None,
                 labels: bool = False, progress: bool | None = None,
                 workers: int | None = None, memory: int | None = None) -> DicedArray:
    """Import ``source`` into array ``name`` at the repo's current (open) version.

    Parameters
    ----------
    repo
        A repo handle at an open version node.
    name
        The array to write. A new array gets the source's dtype and the shape
        ``offset + source shape``; an existing one (say, unbounded) must have as many
        dimensions and a dtype the source's values fit in.
    source
        A path or spec string (see :func:`diced.io.open_source`: slice directory or glob,
        TIFF volume, ``file.h5:/dataset``, zarr or N5 directory, ``.npy``), a numpy
        array, or a :class:`~diced.io.Source`.
    offset
        Where the source's first voxel goes in the array (default: the origin).
    chunks
        Chunk shape of a new array (default: diced's, 64³ in 3-D).
    labels
        Make a new array a 3-D uint64 label volume (``islabel3D``); the source must hold
        unsigned integers.
    progress
        Show a progress bar: ``None`` (default) when stdout is a terminal.
    workers, memory
        Slabs in flight at once (default 3), reduced so that they hold at most ``memory``
        bytes (default 512 MiB); at least one slab is always in flight.

    Returns the array. Interrupted (Ctrl-C, a crash), the import leaves whole chunks
    only; running it again finishes it, skipping chunks already stored identically.

    Raises
    ------
    NotFoundError
        The source (or a dataset inside it) does not exist.
    InvalidInputError
        The source is unreadable, inconsistent, or of a dtype diced does not store; or it
        does not suit the existing array.
    InvalidIndexError
        The source does not fit in the existing array at ``offset``.
    LockedError
        The current version is locked or the repo handle read-only (nothing is written).
    ConflictError
        Another process locked the version during the import: the slabs written before
        the lock may be in the locked version; branch and import again.
    """
    with open_source(source) as src:
        where = _offset(offset, len(src.shape))
        arr = _target(repo, name, src, where, chunks, labels)
        if not src.shape or 0 in src.shape:
            return arr
        stored = set(arr.chunk_digests())
        box = tuple(slice(o, o + n) for o, n in zip(where, src.shape, strict=True))
        row_bytes = int(np.prod(src.shape[1:])) * arr.dtype.itemsize
        slabs = plan_slabs(src.shape[0], arr.chunks[0], where[0])

        def read(slab: Slab) -> npt.NDArray[Any]:
            return src.read(slab.start, slab.stop).astype(arr.dtype, copy=False)

        with TransferProgress(f"import {name}", src.shape[0] * row_bytes,
                              show=progress) as bar:
            def write(slab: Slab, data: npt.NDArray[Any]) -> None:
                slab_box = (slice(where[0] + slab.start, where[0] + slab.stop), *box[1:])
                parts = _chunk_boxes(slab_box, arr.chunks)
                if any(_chunk_of(slab_box, p, arr.chunks) in stored for p in parts):
                    current = arr[slab_box]
                    for part in parts:
                        if not _same_bits(current[part], data[part]):
                            arr[tuple(slice(s.start + p.start, s.start + p.stop)
                                      for s, p in zip(slab_box, part, strict=True))] = data[part]
                elif not _all_fill(data):
                    arr[slab_box] = data
                bar.advance(data.nbytes)

            with raced_lock(f"the import into array {name!r}"):
                stream(slabs, read, write,
                       workers=_workers(workers, memory, arr.chunks[0] * row_bytes))
    return arr


def export_array(repo_or_array: DicedRepo | DicedArray, name: str | None,
                 dest: str | os.PathLike[str], *,
                 box: Sequence[slice] | None = None, overwrite: bool = False,
                 format: str | None = None, progress: bool | None = None,
                 workers: int | None = None, memory: int | None = None) -> None:
    """Write array ``name`` (of the repo's current version), or a box of it, to ``dest``.

    Parameters
    ----------
    repo_or_array
        A repo handle (at any version, locked or open), or an array handle; with an
        array handle ``name`` may be ``None``.
    dest
        A directory for a TIFF stack (one 2-D file per index along axis 0), ``x.tif``,
        ``x.h5`` or ``x.h5:/group/dataset``, ``x.zarr`` or ``group.zarr:/path``.
    box
        One ``slice(start, stop)`` per axis (steps of 1; ``None`` ends allowed). Default:
        the whole array; for an unbounded array, its extents.
    overwrite
        Replace an existing ``dest`` (default: refuse).
    format
        ``tiff-stack``, ``tiff``, ``hdf5`` or ``zarr``; default from ``dest``'s suffix.
    progress, workers, memory
        As for :func:`import_array`.

    New files and directories appear under ``dest`` only when the export is complete.

    Raises
    ------
    NotFoundError
        No such array, or the unbounded array holds no data and no box was given.
    InvalidInputError, InvalidIndexError
        A bad box or format, or a format that cannot hold the array's dimensions.
    AlreadyExistsError
        ``dest`` exists and ``overwrite`` is false.
    """
    if isinstance(repo_or_array, DicedArray):
        arr = repo_or_array
        if name is not None and name != arr.name:
            raise InvalidInputError(f"name {name!r} disagrees with the array {arr.name!r}")
    else:
        if name is None:
            raise InvalidInputError("export_array needs the name of the array to export")
        arr = repo_or_array.get_array(name)
    region = _box(arr, box)
    shape = tuple(s.stop - s.start for s in region)
    target = open_destination(os.fspath(dest), shape, arr.dtype, arr.chunks, format=format,
                              overwrite=overwrite)
    row_bytes = int(np.prod(shape[1:])) * arr.dtype.itemsize
    try:
        with TransferProgress(f"export {arr.name}", shape[0] * row_bytes, show=progress) as bar:
            def read(slab: Slab) -> npt.NDArray[Any]:
                data: npt.NDArray[Any] = arr[(slice(region[0].start + slab.start,
                                                    region[0].start + slab.stop),
                                              *region[1:])]
                return data

            def write(slab: Slab, data: npt.NDArray[Any]) -> None:
                target.write(slab.start, data)
                bar.advance(data.nbytes)

            stream(plan_slabs(shape[0], arr.chunks[0], region[0].start), read, write,
                   workers=_workers(workers, memory, arr.chunks[0] * row_bytes),
                   ordered=target.ordered)
        target.commit()
    except BaseException:
        target.abort()
        raise


def _box(arr: DicedArray, box: Sequence[slice] | None) -> tuple[slice, ...]:
    """``box`` with its ends filled in and checked against ``arr`` (steps of 1 only)."""
    if box is None:
        if not arr.unbounded:
            return tuple(slice(0, n) for n in arr.shape)
        extents = arr.get_extents()
        if all(s.stop == 0 for s in extents):
            raise NotFoundError(f"unbounded array {arr.name!r} holds no data; give a box")
        return tuple(slice(s.start, min(s.stop, n)) for s, n in zip(extents, arr.shape,
                                                                     strict=True))
    parts = tuple(box)
    if len(parts) != arr.ndim or not all(isinstance(s, slice) for s in parts):
        raise InvalidInputError(f"box must be {arr.ndim} slices, one per axis, not {box!r}")
    out = []
    for s, n in zip(parts, arr.shape, strict=True):
        if s.step not in (None, 1):
            raise InvalidInputError(f"box slices take no step, got {s}")
        start = 0 if s.start is None else int(s.start)
        stop = n if s.stop is None else int(s.stop)
        if not 0 <= start < stop <= n:
            raise InvalidIndexError(f"box {s.start}:{s.stop} is empty or outside the array's "
                                    f"0:{n}")
        out.append(slice(start, stop))
    return tuple(out)
