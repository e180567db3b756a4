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


def _reduce(part: npt.NDArray[Any], block: tuple[int, ...], method: str) -> npt.NDArray[Any]:
    """Reduce ``part`` (a whole number of ``block``-shaped blocks per axis) block by block."""
    split: list[int] = []
    for n, b in zip(part.shape, block, strict=True):
        split += [n // b, b]
    grouped = part.reshape(split)
    inner = tuple(range(1, 2 * part.ndim, 2))
    if method == "min":
        return np.asarray(grouped.min(axis=inner))
    if method == "max":
        return np.asarray(grouped.max(axis=inner))
    if method == "mean":
        return _mean(grouped, inner, math.prod(block))
    return _mode(grouped, inner)


def _mean(grouped: npt.NDArray[Any], inner: tuple[int, ...], count: int) -> npt.NDArray[Any]:
    dtype = grouped.dtype
    if dtype.kind == "f":
        total = grouped.sum(axis=inner, dtype=np.float64)
        return np.asarray(total / count).astype(dtype)
    if dtype.kind == "b":
        return _mean(grouped.view(np.uint8), inner, count).astype(bool)
    if dtype.itemsize <= 4:
        # count × 2³² stays far inside int64 for any block of fewer than 2³¹ voxels.
        floor, rest = np.divmod(grouped.sum(axis=inner, dtype=np.int64), count)
    else:
        floor, rest = _wide_divmod(grouped, inner, count)
    # Round half to even: up when the remainder is over half, or exactly half on an odd floor.
    up = (2 * rest > count) | ((2 * rest == count) & (floor % 2 == 1))
    return np.asarray(floor + up).astype(dtype)


def _wide_divmod(grouped: npt.NDArray[Any], inner: tuple[int, ...], count: int
                 ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``divmod(block sum, count)`` of 64-bit integers, exactly, without overflow.

    Each value is split into its high and low 32 bits; their block sums fit in 64 bits,
    and ``sum = high·2³² + low`` is divided by ``count`` in two steps.
    """
    signed = grouped.dtype.kind == "i"
    unsigned = grouped.view(np.uint64)
    low = np.bitwise_and(unsigned, _LOW32).sum(axis=inner, dtype=np.uint64)
    high_values = (grouped >> 32) if signed else (unsigned >> np.uint64(32))
    high = high_values.sum(axis=inner, dtype=np.int64 if signed else np.uint64)
    high_floor, high_rest = np.divmod(high, count)
    rest = high_rest.astype(np.uint64) * np.uint64(2**32) + low
    low_floor, remainder = np.divmod(rest, np.uint64(count))
    wide = np.int64 if signed else np.uint64
    floor = high_floor.astype(wide) * wide(2**32) + low_floor.astype(wide)
    return floor, remainder.astype(np.int64)


def _mode(grouped: npt.NDArray[Any], inner: tuple[int, ...]) -> npt.NDArray[Any]:
    """The most frequent value of each block; ties go to the smallest value."""
    outer = tuple(range(0, grouped.ndim, 2))
    out_shape = tuple(grouped.shape[a] for a in outer)
    rows = np.transpose(grouped, outer + inner).reshape(math.prod(out_shape), -1)
    if rows.shape[1] == 1:
        return rows.reshape(out_shape).copy()
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
