"""numpy indexing semantics on top of zarr's indexers.

zarr 3.1 covers most of numpy indexing but differs in a few places: no negative slice
steps, no numpy integers next to index arrays, no Ellipsis with index arrays, a lone 1-D
mask is taken as a full-array mask, and an int and an index array apart are laid out
orthogonally. :func:`plan` rewrites a numpy selection into one zarr handles, and says how
to turn zarr's result into numpy's (and a numpy-shaped value into zarr's) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from zarr.core.chunk_grids import ChunkGrid
from zarr.core.indexing import (
    BasicIndexer,
    CoordinateIndexer,
    MaskIndexer,
    OrthogonalIndexer,
)

from diced.errors import InvalidIndexError

__all__ = ["SelectionPlan", "plan", "unbounded_problem"]

Kind = Literal["basic", "orthogonal", "fancy"]


@dataclass(frozen=True)
class SelectionPlan:
    """How to run a numpy selection through zarr.

    ``selection`` and ``kind`` are what zarr receives (``basic`` → ``arr[sel]``,
    ``orthogonal`` → ``oindex``, ``fancy`` → ``vindex``). ``shape`` is numpy's result
    shape. zarr's result becomes numpy's by flipping ``flips`` then moving axis
    ``move_from`` to the front. A basic plan keeps zarr's ``indexer`` (which chunks the
    selection touches, and which parts), so the fast path does not compute it again.
    """

    selection: tuple[Any, ...]
    kind: Kind
    shape: tuple[int, ...]
    flips: tuple[int, ...]
    move_from: int | None
    indexer: BasicIndexer | None = None

    def to_numpy(self, result: Any) -> Any:
        """zarr's result laid out as numpy's."""
        if not self.flips and self.move_from is None:
            return result
        out = np.asarray(result)
        if self.flips:
            out = np.flip(out, self.flips)
        if self.move_from is not None:
            out = np.moveaxis(out, self.move_from, 0)
        return out

    def to_zarr(self, value: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A value of numpy's result shape laid out for zarr (inverse of :meth:`to_numpy`)."""
        if self.move_from is not None:
            value = np.moveaxis(value, 0, self.move_from)
        return np.flip(value, self.flips) if self.flips else value


def _is_int(item: Any) -> bool:
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def _normalise(item: Any) -> Any:
    if _is_int(item):
        return int(item)
    if item is Ellipsis or isinstance(item, slice) or item is None:
        return item
    if isinstance(item, (bool, np.bool_)):
        raise InvalidIndexError("a lone True/False is not an index; use a boolean array")
    array = np.asarray(item)
    if array.dtype.kind not in "biu":
        raise InvalidIndexError(f"index arrays must hold integers or booleans, not {array.dtype}")
    return array


def _expand(sel: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    """Replace Ellipsis and pad with full slices so there is one item per axis."""
    if sum(s is Ellipsis for s in sel) > 1:
        raise InvalidIndexError("an index can only have a single ellipsis ('...')")
    if any(s is None for s in sel):
        raise InvalidIndexError("numpy.newaxis (None) is not supported in diced indexing")
    consumed = sum(1 if not isinstance(s, np.ndarray) or s.dtype != bool else s.ndim
                   for s in sel if s is not Ellipsis)
    if consumed > ndim:
        raise InvalidIndexError(
            f"too many indices: the array has {ndim} dimensions but {consumed} were given"
        )
    fill = (slice(None),) * (ndim - consumed)
    for i, s in enumerate(sel):
        if s is Ellipsis:
            return sel[:i] + fill + sel[i + 1:]
    return sel + fill


def _positive_steps(sel: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[tuple[Any, ...],
                                                                           tuple[int, ...]]:
    """Rewrite negative-step slices as positive ones; return the output axes to flip."""
    out, flips, axis = [], [], 0
    for item, n in zip(sel, shape, strict=True):
        if isinstance(item, slice) and item.step is not None and item.step < 0:
            start, stop, step = item.indices(n)
            count = len(range(start, stop, step))
            out.append(slice(start + step * (count - 1), start + 1, -step) if count
                       else slice(0, 0))
            flips.append(axis)
        else:
            out.append(item)
        if not _is_int(item):
            axis += 1
    return tuple(out), tuple(flips)


def unbounded_problem(selection: Any, ndim: int) -> str | None:
    """Why ``selection`` cannot run on an unbounded array (``None`` when it can).

    An unbounded axis (2³¹−1 voxels, sparse) must be selected with explicit, non-negative
    bounds: an open-ended slice, a missing axis or ``...`` would cover ~2³¹ positions, and
    a negative position would count from the far end of that space.
    """
    raw = selection if isinstance(selection, tuple) else (selection,)
    try:
        sel = _expand(tuple(_normalise(s) for s in raw), ndim)
    except InvalidIndexError:
        return None  # malformed: plan() reports it
    for axis, item in enumerate(sel):
        if _is_int(item) and item < 0:
            return f"the negative index {item} on axis {axis}"
        if isinstance(item, np.ndarray) and item.dtype != bool and item.size and item.min() < 0:
            return f"negative index-array entries on axis {axis}"
        if isinstance(item, slice):
            step = 1 if item.step is None else item.step
            if step == 0:
                return None  # plan() reports it
            open_end = item.stop is None if step > 0 else item.start is None
            if open_end:
                return f"an open-ended slice on axis {axis} ({_show(item)})"
            if any(b is not None and b < 0 for b in (item.start, item.stop)):
                return f"a negative slice bound on axis {axis} ({_show(item)})"
    return None


def _show(item: slice) -> str:
    parts = ["" if v is None else str(v) for v in (item.start, item.stop)]
    return ":".join(parts) + ("" if item.step is None else f":{item.step}")


def plan(selection: Any, shape: tuple[int, ...], chunk_grid: ChunkGrid) -> SelectionPlan:
    """Plan a numpy selection of an array of ``shape``.

    Raises
    ------
    InvalidIndexError
        The selection is malformed, out of bounds, or one numpy and zarr would read
        differently (several index arrays mixed with slices, or n-D integer index arrays
        on one axis): use ``arr.zarr.oindex`` / ``arr.zarr.vindex`` for those.
    """
    raw = selection if isinstance(selection, tuple) else (selection,)
    try:
        sel = tuple(_normalise(s) for s in raw)
        arrays = [s for s in sel if isinstance(s, np.ndarray)]
        if not arrays:
            basic, flips = _positive_steps(_expand(sel, len(shape)), shape)
            indexer = BasicIndexer(basic, shape, chunk_grid)
            return SelectionPlan(basic, "basic", indexer.shape, flips, None, indexer)
        if len(sel) == 1 and arrays[0].dtype == bool and arrays[0].ndim == len(shape):
            mask = arrays[0]
            return SelectionPlan(sel, "fancy", MaskIndexer(mask, shape, chunk_grid).shape, (),
                                 None)
        if len(arrays) == len(sel) == len(shape) and all(a.dtype != bool for a in arrays):
            coords = CoordinateIndexer(sel, shape, chunk_grid)
            return SelectionPlan(sel, "fancy", coords.shape, (), None)
        return _plan_orthogonal(sel, shape, chunk_grid)
    except (IndexError, ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, InvalidIndexError):
            raise
        raise InvalidIndexError(f"bad index {selection!r:.200} for shape {shape}: {exc}") \
            from exc


def _plan_orthogonal(sel: tuple[Any, ...], shape: tuple[int, ...],
                     chunk_grid: ChunkGrid) -> SelectionPlan:
    sel = _expand(sel, len(shape))
    positions = [i for i, s in enumerate(sel) if isinstance(s, np.ndarray)]
    if len(positions) > 1:
        raise InvalidIndexError(
            "several index arrays mixed with slices: numpy pairs them up, zarr crosses them; "
            "use arr.zarr.oindex[...] for the cross product, or index one axis at a time"
        )
    if sel[positions[0]].ndim != 1:
        raise InvalidIndexError("an index array on one axis must be 1-D")
    sel, flips = _positive_steps(sel, shape)
    zarr_shape = OrthogonalIndexer(sel, shape, chunk_grid).shape
    # numpy treats ints as index arrays too: when they stand apart from the index array
    # (a slice between them), numpy moves the indexed axis to the front.
    advanced = [i for i, s in enumerate(sel) if _is_int(s) or isinstance(s, np.ndarray)]
    move_from = None
    if advanced[-1] - advanced[0] + 1 != len(advanced):
        move_from = sum(1 for s in sel[:positions[0]] if not _is_int(s))
        if move_from == 0:
            move_from = None
    out_shape = zarr_shape
    if move_from is not None:
        out_shape = (zarr_shape[move_from], *zarr_shape[:move_from],
                     *zarr_shape[move_from + 1:])
    return SelectionPlan(sel, "orthogonal", tuple(out_shape), flips, move_from)
