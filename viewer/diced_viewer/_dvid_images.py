"""DVID voxel endpoints of arrays: ``raw`` and ``isotropic`` (subvolumes, 2-D slices as PNG,
JPEG or values) and, for label arrays, ``label`` and ``labels``.

Axes are DVID's, x first (numpy's last axis): ``dims`` ``0_1_2`` is a whole subvolume and is
streamed by :mod:`diced_viewer._raw`; two axes (``0_1``, ``0_2``, ``1_2`` or ``xy``, ``xz``,
``yz``) are a slice through ``offset``, whose rows follow the second axis and columns the
first. ``isotropic`` slices are resampled (nearest neighbour, so values stay exact) so that
a pixel is as long as it is wide, from the array's voxel size.
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diced.array import DicedArray
from diced_viewer._errors import ApiError, TooLarge
from diced_viewer._limits import leased, read_body
from diced_viewer._raw import MAX_RAW_BYTES, raw_get, raw_post
from diced_viewer._repos import array_of, repo_at
from diced_viewer._security import media_type

__all__ = ["MAX_LABEL_POINTS", "image_routes"]

#: Most coordinates one ``labels`` request may ask about.
MAX_LABEL_POINTS = 1_000_000
_SLICES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}
_INTS = re.compile(r"^-?\d{1,10}(_-?\d{1,10}){0,31}$")
_JPG = re.compile(r"^jpg(:(\d{1,3}))?$")
_RAW_FORMATS = (None, "nD", "octet-stream")


def _ints(text: str, what: str) -> list[int]:
    if not _INTS.match(text):
        raise ApiError(f"{what} is integers joined by '_', x first")
    return [int(v) for v in text.split("_")]


def _axes(text: str, ndim: int) -> tuple[int, ...]:
    """DVID axis indices (0 = x) of a ``dims`` segment."""
    axes: tuple[int, ...] = _SLICES[text] if text in _SLICES else tuple(_ints(text, "dims"))
    if len(set(axes)) != len(axes) or not all(0 <= a < ndim for a in axes):
        raise ApiError(f"dims {text!r} must name distinct axes of 0..{ndim - 1} (x is 0)")
    return axes


def _array(request: Request) -> DicedArray:
    return array_of(repo_at(request, request.path_params["uuid"]), request.path_params["array"])


def _plane(array: DicedArray, axes: tuple[int, ...], size: list[int],
           offset: list[int]) -> npt.NDArray[Any]:
    """The slice through ``offset`` along DVID ``axes``: rows ``axes[1]``, columns ``axes[0]``."""
    ndim = array.ndim
    if len(size) != 2 or len(offset) != ndim:
        raise ApiError(f"a slice takes 2 sizes and {ndim} offsets (x first)")
    if size[0] * size[1] * array.dtype.itemsize > MAX_RAW_BYTES:
        raise TooLarge(f"the slice has more than {MAX_RAW_BYTES} bytes")
    selection: list[Any] = []
    for axis in range(ndim):
        dvid_axis = ndim - 1 - axis
        start = offset[dvid_axis]
        stop = start + (size[axes.index(dvid_axis)] if dvid_axis in axes else 1)
        if start < 0 or stop > array.shape[axis]:
            raise ApiError(f"the slice leaves the array on numpy axis {axis} "
                           f"({start}..{stop} of {array.shape[axis]})")
        selection.append(slice(start, stop) if dvid_axis in axes else start)
    data = np.asarray(array[tuple(selection)])
    # numpy keeps the kept axes in numpy order: the higher DVID axis comes first.
    return data if axes[1] > axes[0] else data.T


def _isotropic(array: DicedArray, axes: tuple[int, ...],
               plane: npt.NDArray[Any]) -> npt.NDArray[Any]:
    size = list(reversed(array.voxel_size))  # x first
    across, down = size[axes[0]], size[axes[1]]
    finest = min(across, down)
    height = max(1, round(plane.shape[0] * down / finest))
    width = max(1, round(plane.shape[1] * across / finest))
    rows = (np.arange(height) * plane.shape[0] // height)
    cols = (np.arange(width) * plane.shape[1] // width)
    return plane[np.ix_(rows, cols)]


def _encode(plane: npt.NDArray[Any], fmt: str | None) -> tuple[bytes, str]:
    if fmt in _RAW_FORMATS:
        return np.ascontiguousarray(plane, dtype=plane.dtype.newbyteorder("<")).tobytes(), \
            "application/octet-stream"
    jpg = _JPG.match(fmt or "")
    if fmt != "png" and jpg is None:
        raise ApiError(f"unknown format {fmt!r}: use png, jpg, jpg:QUALITY or nD")
    if plane.dtype == np.uint8 or plane.dtype == np.bool_:
        image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.uint8))  # mode L
    elif plane.dtype == np.uint16 and jpg is None:
        image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.uint16))  # mode I;16
    else:
        raise ApiError(f"a {plane.dtype} slice has no {'JPEG' if jpg else 'PNG'} form here: "
                       "ask for /nD (little-endian values, x fastest)")
    out = io.BytesIO()
    if jpg is not None:
        quality = int(jpg.group(2) or 90)
        if not 1 <= quality <= 100:
            raise ApiError("JPEG quality is 1 to 100")
        image.save(out, format="JPEG", quality=quality)
        return out.getvalue(), "image/jpeg"
    image.save(out, format="PNG")
    return out.getvalue(), "image/png"


async def voxels(request: Request) -> Response:
    """``GET raw|isotropic/{dims}/{size}/{offset}[/{format}]``."""
    array = await run_in_threadpool(_array, request)
    axes = _axes(request.path_params["dims"], array.ndim)
    fmt = request.path_params.get("format")
    isotropic = request.url.path.split("/")[5] == "isotropic"
    whole = len(axes) == array.ndim and axes == tuple(range(array.ndim))
    if whole and (fmt in _RAW_FORMATS or array.ndim != 2):
        if fmt not in _RAW_FORMATS:
            raise ApiError(f"a {array.ndim}-D subvolume comes as octet-stream (nD), not {fmt!r}")
        if isotropic and len(set(array.voxel_size)) > 1:
            raise ApiError("isotropic resampling is offered for 2-D slices; this array's voxels "
                           "are anisotropic, so ask for raw subvolumes")
        request.path_params["dims"] = "_".join(str(a) for a in axes)
        return await raw_get(request)
    if len(axes) != 2:
        raise ApiError(f"dims must name 2 axes (a slice) or all {array.ndim} axes in order")
    size = _ints(request.path_params["size"], "size")
    offset = _ints(request.path_params["offset"], "offset")

    def render() -> Response:
        plane = _plane(array, axes, size, offset)
        if isotropic:
            plane = _isotropic(array, axes, plane)
        data, kind = _encode(plane, fmt or "png")  # DVID's default for slices
        return Response(data, media_type=kind)

    scale = max(array.voxel_size) / min(array.voxel_size) if isotropic else 1
    nbytes = math.prod(size[:2]) * array.dtype.itemsize * 4 * math.ceil(scale)
    return await leased(request, nbytes, "this slice", lambda: run_in_threadpool(render))


def _label_array(request: Request) -> DicedArray:
    array = _array(request)
    if not array.islabel3D:
        raise ApiError(f"{array.name!r} is not a label array (labelblk); label queries need "
                       "one created with islabel3D=True")
    return array


def _labels_at(array: DicedArray, points: list[list[int]]) -> list[int]:
    coords = np.asarray(points, dtype=np.int64).reshape(-1, array.ndim)[:, ::-1]  # numpy order
    if coords.size and ((coords < 0).any() or (coords >= np.asarray(array.shape)).any()):
        raise ApiError("a coordinate lies outside the array")
    if not len(coords):
        return []
    values = np.asarray(array[tuple(coords.T)])
    return [int(v) for v in values]


async def label(request: Request) -> Response:
    """``GET label/{x_y_z}``: ``{"Label": id}``."""
    def read() -> Response:
        array = _label_array(request)
        point = _ints(request.path_params["coord"], "the coordinate")
        if len(point) != array.ndim:
            raise ApiError(f"the coordinate needs {array.ndim} integers, x first")
        return JSONResponse({"Label": _labels_at(array, [point])[0]})

    return await run_in_threadpool(read)


async def labels(request: Request) -> Response:
    """``GET`` or ``POST labels`` with a JSON body ``[[x, y, z], ...]``: the labels there."""
    kind = media_type(request.headers.get("content-type"))
    raw = await read_body(request, limit=64 * 2**20,
                          expect="application/json" if kind == "application/json"
                          else "application/octet-stream")
    try:
        points = json.loads(raw or b"[]")
    except (ValueError, RecursionError) as exc:
        raise ApiError(f"Malformed JSON request in body: {exc}") from exc
    if not isinstance(points, list) or len(points) > MAX_LABEL_POINTS or not all(
            isinstance(p, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                        for v in p) for p in points):
        raise ApiError(f"the body is a JSON list of up to {MAX_LABEL_POINTS} coordinates "
                       "[[x, y, z], ...]")

    def read() -> Response:
        array = _label_array(request)
        if any(len(p) != array.ndim for p in points):
            raise ApiError(f"each coordinate needs {array.ndim} integers, x first")
        return JSONResponse(_labels_at(array, points))

    return await run_in_threadpool(read)


def image_routes() -> list[Route]:
    base = "/api/node/{uuid}/{array}"
    raw = base + "/raw/{dims}/{size}/{offset}"
    iso = base + "/isotropic/{dims}/{size}/{offset}"
    return [
        Route(raw, voxels, methods=["GET", "HEAD"]),
        Route(raw, raw_post, methods=["POST"]),
        Route(raw + "/{format}", voxels, methods=["GET", "HEAD"]),
        Route(iso, voxels, methods=["GET", "HEAD"]),
        Route(iso + "/{format}", voxels, methods=["GET", "HEAD"]),
        Route(base + "/label/{coord}", label),
        Route(base + "/labels", labels, methods=["GET", "POST"]),
    ]
