"""Planes of arrays for display: strided reads, contrast windows, label colours, PNG."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from diced.array import DicedArray
from diced_viewer._errors import ApiError, TooLarge

__all__ = ["MAX_PLANE_EDGE", "PNG_BYTES_PER_PIXEL", "Plane", "PlanePlan", "bounds",
           "label_colours", "plan_plane", "read_plane", "to_png"]

#: Largest edge of a plane image, in pixels (after downsampling).
MAX_PLANE_EDGE = 4096
#: Bytes per pixel a PNG needs besides the plane itself: the RGB image, PIL's copy of it,
#: and the encoded PNG (at most about the image's size).
PNG_BYTES_PER_PIXEL = 9
_BLOCK_PIXELS = 2**18


@dataclass(frozen=True)
class Plane:
    """A 2-D plane of an array: ``data[r, c]`` is voxel ``origin + (r, c) * step``."""

    data: npt.NDArray[Any]
    rows_axis: int
    cols_axis: int
    origin: tuple[int, int]
    step: tuple[int, int]


def bounds(array: DicedArray) -> list[tuple[int, int]]:
    """The displayable ``[start, stop)`` of each axis: the shape, or the extents if unbounded."""
    if array.unbounded:
        return [(s.start, s.stop) for s in array.get_extents()]
    return [(0, n) for n in array.shape]


@dataclass(frozen=True)
class PlanePlan:
    """What :func:`read_plane` will read: the selection and the plane's size, before reading.

    ``selection`` indexes pyramid level ``level`` of the array (0: the array itself);
    ``origin`` and ``step`` are in the array's own voxels.
    """

    selection: tuple[Any, ...]
    rows_axis: int
    cols_axis: int
    origin: tuple[int, int]
    step: tuple[int, int]
    shape: tuple[int, int]
    level: int = 0

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]


def plan_plane(array: DicedArray, rows_axis: int, cols_axis: int, index: list[int],
               max_width: int, max_height: int,
               region: tuple[int, int, int, int] | None = None) -> PlanePlan:
    """The plane of ``rows_axis`` × ``cols_axis`` through ``index``, at most the given size.

    ``region`` (``row_start, row_stop, col_start, col_stop``, clipped to the array) limits
    the plane to a window, which a zoomed-in view fetches at full resolution.
    An array with a pyramid is read from its coarsest level that still fills the plane
    (block means, or modes for labels), so a zoomed-out plane costs about as much as one
    of its size on screen; otherwise downsampling keeps every n-th voxel (nearest
    neighbour), so labels keep their ids and the value under the cursor is a real voxel.
    """
    ndim = array.ndim
    if ndim < 2:
        raise ApiError(f"array {array.name!r} has {ndim} dimension; planes need 2 or more")
    if not (0 <= rows_axis < ndim and 0 <= cols_axis < ndim) or rows_axis == cols_axis:
        raise ApiError(f"rows and cols must be two different axes in 0..{ndim - 1}")
    if not (1 <= max_width <= MAX_PLANE_EDGE and 1 <= max_height <= MAX_PLANE_EDGE):
        raise TooLarge(f"width and height must be 1..{MAX_PLANE_EDGE} pixels")
    if len(index) != ndim:
        raise ApiError(f"index needs {ndim} coordinates (one per axis), got {len(index)}")
    box = bounds(array)
    selection: list[Any] = []
    for axis, ((lo, hi), at) in enumerate(zip(box, index, strict=True)):
        if axis in (rows_axis, cols_axis):
            selection.append(None)
        elif not lo <= at < hi:
            raise ApiError(f"index {at} on axis {axis} is outside {lo}..{hi - 1}")
        else:
            selection.append(at)
    (r0, r1), (c0, c1) = box[rows_axis], box[cols_axis]
    if region is not None:
        r0, r1 = max(r0, region[0]), min(r1, region[1])
        c0, c1 = max(c0, region[2]), min(c1, region[3])
    if r1 <= r0 or c1 <= c0:
        raise ApiError(f"array {array.name!r} has no data in this plane (outside it, or "
                       "nothing written yet)", 404)
    step_r = max(1, math.ceil((r1 - r0) / max_height))
    step_c = max(1, math.ceil((c1 - c0) / max_width))
    coarse = _coarsest_level(array, rows_axis, cols_axis, step_r, step_c)
    if coarse is not None:
        return _level_plan(coarse, selection, rows_axis, cols_axis, (r0, r1, c0, c1),
                           max_width, max_height)
    selection[rows_axis] = slice(r0, r1, step_r)
    selection[cols_axis] = slice(c0, c1, step_c)
    shape = (math.ceil((r1 - r0) / step_r), math.ceil((c1 - c0) / step_c))
    return PlanePlan(tuple(selection), rows_axis, cols_axis, (r0, c0), (step_r, step_c), shape)


def _coarsest_level(array: DicedArray, rows_axis: int, cols_axis: int, step_r: int,
                    step_c: int) -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
    """``(level, scale, shape)`` of the coarsest pyramid level no coarser than the steps.

    ``None`` when the array has no pyramid, no level is coarse enough, or the levels do
    not have the shapes level 0 calls for (an open version resized since its last update).
    """
    spec = array.pyramid
    if spec is None:
        return None
    shapes = spec.shapes(array.shape)
    for level in range(spec.levels, 0, -1):
        scale = spec.scale(level)
        if scale[rows_axis] <= step_r and scale[cols_axis] <= step_c:
            if array.level(level).shape != shapes[level]:
                return None
            return level, scale, shapes[level]
    return None


def _level_plan(coarse: tuple[int, tuple[int, ...], tuple[int, ...]], selection: list[Any],
                rows_axis: int, cols_axis: int, box: tuple[int, int, int, int],
                max_width: int, max_height: int) -> PlanePlan:
    """The plan reading the window ``box`` (level-0 voxels) from a pyramid level."""
    level, scale, shape = coarse
    out = [at if at is None else at // f for at, f in zip(selection, scale, strict=True)]
    origin, step, size = [], [], []
    for axis, lo, hi, most in ((rows_axis, box[0], box[1], max_height),
                               (cols_axis, box[2], box[3], max_width)):
        f = scale[axis]
        start, stop = lo // f, min(-(-hi // f), shape[axis])
        stride = max(1, math.ceil((stop - start) / most))
        out[axis] = slice(start, stop, stride)
        origin.append(start * f)
        step.append(stride * f)
        size.append(math.ceil((stop - start) / stride))
    return PlanePlan(tuple(out), rows_axis, cols_axis, (origin[0], origin[1]),
                     (step[0], step[1]), (size[0], size[1]), level)


def read_plane(array: DicedArray, plan: PlanePlan) -> Plane:
    """The plane ``plan`` describes, rows first."""
    source = array.level(plan.level) if plan.level else array
    data = np.asarray(source[plan.selection])
    if plan.rows_axis > plan.cols_axis:
        data = data.T
    return Plane(np.ascontiguousarray(data), plan.rows_axis, plan.cols_axis, plan.origin,
                 plan.step)


def _row_blocks(data: npt.NDArray[Any]) -> Iterator[slice]:
    """Row ranges of about :data:`_BLOCK_PIXELS` pixels, so temporaries stay small."""
    rows = max(1, _BLOCK_PIXELS // max(1, data.shape[1]))
    for start in range(0, data.shape[0], rows):
        yield slice(start, start + rows)


def label_colours(data: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """RGB colours for label ids: a fixed hash per id, black for 0 (background)."""
    rgb = np.empty((*data.shape, 3), np.uint8)
    for rows in _row_blocks(data):
        ids = data[rows].astype(np.uint64)
        h = ids * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
        for channel, shift in enumerate((0, 8, 16)):
            byte = ((h >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.uint8)
            rgb[rows, ..., channel] = byte // 2 + 96  # bright, never black
        rgb[rows][ids == 0] = 0
    return rgb


def _default_window(data: npt.NDArray[Any]) -> tuple[float, float]:
    """The dtype's range for 8-bit integers; else the finite minimum and maximum."""
    if data.dtype.kind in "biu" and data.dtype.itemsize == 1:
        return (0.0, 1.0) if data.dtype.kind == "b" else (
            float(np.iinfo(data.dtype).min), float(np.iinfo(data.dtype).max))
    if data.size == 0:
        return 0.0, 1.0
    if data.dtype.kind in "biu":
        return float(data.min()), float(data.max())
    low, high = math.inf, -math.inf
    for rows in _row_blocks(data):
        block = data[rows]
        finite = block[np.isfinite(block)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    return (low, high) if low <= high else (0.0, 1.0)


def _grey(data: npt.NDArray[Any], low: float, high: float) -> npt.NDArray[np.uint8]:
    span = high - low if high > low else 1.0
    grey = np.empty(data.shape, np.uint8)
    for rows in _row_blocks(data):
        values = data[rows].astype(np.float64)
        values -= low
        values /= span
        values *= 255.0
        np.nan_to_num(values, copy=False)
        np.clip(values, 0, 255, out=values)
        grey[rows] = np.rint(values)
    return grey


def to_png(plane: Plane, *, label: bool, lo: float | None, hi: float | None) -> bytes:
    """PNG of a plane: label colours, or grey levels of the window ``[lo, hi]``.

    The default window of integer dtypes of at most 8 bits is the dtype's range, so a
    uint8 plane's PNG holds the voxel values unchanged; other dtypes default to the
    plane's minimum and maximum. Work is done in blocks of rows, so the memory it needs
    is the plane, its 8-bit image and the PNG (see :data:`PNG_BYTES_PER_PIXEL`).
    """
    if label:
        image = Image.fromarray(label_colours(plane.data))
    else:
        default_lo, default_hi = _default_window(plane.data)
        image = Image.fromarray(_grey(plane.data, default_lo if lo is None else lo,
                                      default_hi if hi is None else hi))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
