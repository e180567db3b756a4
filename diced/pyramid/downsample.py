"""Downsampling one block of voxels by integer factors: the arithmetic of pyramid levels.

Pure numpy, no storage. Output voxel ``v`` reduces the input voxels
``[v·f, min((v+1)·f, n))`` on every axis: blocks at the far edge of an axis whose length
is not a multiple of its factor reduce only the voxels that exist (a 5-voxel axis with
factor 2 gives 3 voxels: means of 2, 2 and 1 voxels). Every method is a function of each
block's voxels alone, so computing a chunk of a level on its own and computing the whole
level at once give the same bytes.

Methods (:data:`METHODS`):

``mean``
    Images. Integers: the exact mean of the block, rounded to the nearest integer, halves
    to the even neighbour (as ``numpy.rint``), computed in exact integer arithmetic for
    every integer dtype, 64-bit included. Floats: the sum in float64 divided by the count,
    cast to the array's dtype (NaN propagates). Booleans: the majority (a tie is False).
``mode``
    Label volumes: the most frequent value of the block; a tie goes to the smallest value.
    0 (background) counts like any other label.
``min``, ``max``
    The smallest or largest value of the block (NaN propagates for floats).
``nearest``
    The block's first voxel (the one at ``v·f``): plain subsampling, as a strided read.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["METHODS", "downsample", "downsampled_shape"]

#: The downsampling methods, by name.
METHODS = ("mean", "mode", "min", "max", "nearest")

_LOW32 = np.uint64(0xFFFFFFFF)


def downsampled_shape(shape: tuple[int, ...], factors: tuple[int, ...]) -> tuple[int, ...]:
    """The shape one level up: ``ceil(n / f)`` on every axis."""
    return tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))


def downsample(data: npt.NDArray[Any], factors: tuple[int, ...], method: str
               ) -> npt.NDArray[Any]:
    """``data`` reduced by ``factors`` with ``method``; same dtype, shape ceil(n / f).

    ``method`` must be one of :data:`METHODS` (callers validate it).
    """
    if method == "nearest":
        return np.ascontiguousarray(data[tuple(slice(None, None, f) for f in factors)])
    out = np.empty(downsampled_shape(data.shape, factors), dtype=data.dtype)
    # Split every axis into its whole blocks and the partial block at its end, so each
    # piece reduces blocks of one shape.
    pieces = [_pieces(n, f) for n, f in zip(data.shape, factors, strict=True)]
    for combo in itertools.product(*pieces):
        source = tuple(slice(start, stop) for start, stop, _, _ in combo)
        target = tuple(slice(start, stop) for _, _, start, stop in combo)
        block = tuple(min(f, stop - start) if stop > start else f
                      for (start, stop, _, _), f in zip(combo, factors, strict=True))
        part = data[source]
        if part.size:
            out[target] = _reduce(part, block, method)
    return out


def _pieces(n: int, f: int) -> list[tuple[int, int, int, int]]:
    """``(in start, in stop, out start, out stop)`` of the whole blocks and the partial one."""
    whole = n // f
    pieces = [(0, whole * f, 0, whole)] if whole else []
    if n % f:
        pieces.append((whole * f, n, whole, whole + 1))
    return pieces


def _offsets(part: npt.NDArray[Any], block: tuple[int, ...]) -> list[npt.NDArray[Any]]:
    """The block's voxels as strided views, one per offset inside the block."""
    return [part[tuple(slice(o, None, b) for o, b in zip(offset, block, strict=True))]
            for offset in itertools.product(*(range(b) for b in block))]


def _fold(part: npt.NDArray[Any], block: tuple[int, ...], combine: np.ufunc,
          dtype: Any = None) -> npt.NDArray[Any]:
    """Combine the voxels of each block with ``combine``, one axis at a time.

    Strided slices combined element-wise are far faster in numpy than a reduction over
    the inner axes of a reshaped array. ``dtype`` is the accumulator's.
    """
    out, accumulator = part, dtype if dtype is not None else part.dtype
    for axis, b in enumerate(block):
        if b == 1:
            continue
        views = [out[(slice(None),) * axis + (slice(o, None, b),)] for o in range(b)]
        acc = views[0].astype(accumulator)
        for view in views[1:]:
            combine(acc, view, out=acc)
        out = acc
    return out if out is not part else part.astype(accumulator)


def _reduce(part: npt.NDArray[Any], block: tuple[int, ...], method: str) -> npt.NDArray[Any]:
    """Reduce ``part`` (a whole number of ``block``-shaped blocks per axis) block by block."""
    if method == "min":
        return _fold(part, block, np.minimum)
    if method == "max":
        return _fold(part, block, np.maximum)
    if method == "mean":
        return _mean(part, block)
    return _mode(part, block)


def _accumulator(dtype: np.dtype[Any], count: int) -> Any:
    """The smallest signed integer type that holds a sum of ``count`` values of ``dtype``."""
    info = np.iinfo(dtype)
    bound = count * max(abs(int(info.min)), int(info.max))
    for candidate in (np.int16, np.int32):
        if bound <= np.iinfo(candidate).max:
            return candidate
    return np.int64


def _mean(part: npt.NDArray[Any], block: tuple[int, ...]) -> npt.NDArray[Any]:
    dtype, count = part.dtype, math.prod(block)
    if dtype.kind == "f":
        total = _fold(part, block, np.add, np.float64)
        return np.asarray(total / count).astype(dtype)
    if dtype.kind == "b":
        return _mean(part.view(np.uint8), block).astype(bool)
    if dtype.itemsize <= 4:
        # Sums of fewer than 2³¹ values of 32 bits stay far inside int64.
        floor, rest = np.divmod(_fold(part, block, np.add, _accumulator(dtype, count)), count)
    else:
        floor, rest = _wide_divmod(part, block, count)
    # Round half to even: up when the remainder is over half, or exactly half on an odd
    # floor. (rest < count, so twice the rest fits the accumulator.)
    twice = rest * 2
    up = (twice > count) | ((twice == count) & (floor % 2 == 1))
    floor += up
    return floor.astype(dtype, copy=False)


def _wide_divmod(part: npt.NDArray[Any], block: tuple[int, ...], count: int
                 ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``divmod(block sum, count)`` of 64-bit integers, exactly, without overflow.

    Each value is split into its high and low 32 bits; their block sums fit in 64 bits,
    and ``sum = high·2³² + low`` is divided by ``count`` in two steps.
    """
    signed = part.dtype.kind == "i"
    unsigned = part.view(np.uint64)
    low = _fold(np.bitwise_and(unsigned, _LOW32), block, np.add)
    high = _fold((part >> 32) if signed else (unsigned >> np.uint64(32)), block, np.add)
    high_floor, high_rest = np.divmod(high, count)
    rest = high_rest.astype(np.uint64) * np.uint64(2**32) + low
    low_floor, remainder = np.divmod(rest, np.uint64(count))
    wide = np.int64 if signed else np.uint64
    floor = high_floor.astype(wide) * wide(2**32) + low_floor.astype(wide)
    return floor, remainder.astype(np.int64)


#: Blocks up to this many voxels take the mode by comparing every pair of voxels; larger
#: ones sort each block.
_PAIRWISE_MODE = 16


def _mode(part: npt.NDArray[Any], block: tuple[int, ...]) -> npt.NDArray[Any]:
    """The most frequent value of each block; ties go to the smallest value."""
    views = _offsets(part, block)
    if len(views) == 1:
        return views[0].copy()
    if len(views) > _PAIRWISE_MODE:
        return _sorted_mode(part, block)
    counts = [np.ones(views[0].shape, dtype=np.int16) for _ in views]
    for i, j in itertools.combinations(range(len(views)), 2):
        same = views[i] == views[j]
        counts[i] += same
        counts[j] += same
    top = np.maximum.reduce(counts)
    # Among the values that occur most often, the smallest.
    kind = part.dtype.kind
    largest = np.inf if kind == "f" else True if kind == "b" else np.iinfo(part.dtype).max
    best = np.full(top.shape, largest, dtype=part.dtype)
    for view, count in zip(views, counts, strict=True):
        np.copyto(best, np.minimum(best, view), where=count == top)
    return best


def _sorted_mode(part: npt.NDArray[Any], block: tuple[int, ...]) -> npt.NDArray[Any]:
    split: list[int] = []
    for n, b in zip(part.shape, block, strict=True):
        split += [n // b, b]
    grouped = part.reshape(split)
    outer, inner = tuple(range(0, grouped.ndim, 2)), tuple(range(1, grouped.ndim, 2))
    out_shape = tuple(grouped.shape[a] for a in outer)
    rows = np.transpose(grouped, outer + inner).reshape(math.prod(out_shape), -1)
    ordered = np.sort(rows, axis=1)
    # run[:, j]: how many equal values end at column j of the sorted row. The first column
    # where the longest run ends belongs to the smallest of the most frequent values.
    run = np.ones(ordered.shape, dtype=np.int32)
    for j in range(1, ordered.shape[1]):
        same = ordered[:, j] == ordered[:, j - 1]
        run[:, j] = np.where(same, run[:, j - 1] + 1, 1)
    best = np.argmax(run, axis=1)
    found: npt.NDArray[Any] = ordered[np.arange(len(ordered)), best]
    return found.reshape(out_shape)
