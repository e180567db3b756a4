"""DVID raw subvolumes: ``GET``/``POST /api/node/{uuid}/{array}/raw/{dims}/{size}/{offset}``.

A raw read is streamed in slabs: consecutive boxes of the request in C order, aligned with
the array's chunks where a chunk row fits in :attr:`ServerLimits.slab_bytes`. A request
holds a lease of two slabs (one being read, one being sent) for its whole response, so a
256 MiB read costs the server tens of MiB, not the subvolume's size. A raw write needs the
whole body before it changes the store (a broken upload leaves the version untouched), so
it leases the body's size.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterator, Sequence

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from diced.array import DicedArray
from diced_viewer._errors import ApiError, TooLarge, WritesDisabled
from diced_viewer._limits import Lease, ServerLimits, budget, read_body
from diced_viewer._repos import array_of, repo_at, writes_allowed

__all__ = ["MAX_RAW_BYTES", "plan_slabs", "raw_get", "raw_post"]

#: Largest subvolume a raw GET returns or a raw POST accepts, in bytes.
MAX_RAW_BYTES = 256 * 2**20
_SIZES = re.compile(r"^\d{1,10}(_\d{1,10}){0,31}$")
_OFFSETS = re.compile(r"^-?\d{1,10}(_-?\d{1,10}){0,31}$")
_OCTETS = "application/octet-stream"


def raw_selection(request: Request, array: DicedArray) -> tuple[tuple[slice, ...],
                                                                tuple[int, ...]]:
    """numpy selection and shape of a DVID raw request (sizes and offsets x first)."""
    dims, sizes, offsets = (request.path_params[k] for k in ("dims", "size", "offset"))
    ndim = array.ndim
    if dims != "_".join(str(i) for i in range(ndim)):
        raise ApiError(f"array {array.name!r} has {ndim} axes: use dims "
                       f"{'_'.join(str(i) for i in range(ndim))!r} (x first)")
    if not _SIZES.match(sizes) or not _OFFSETS.match(offsets):
        raise ApiError("size and offset are integers joined by '_', x first")
    size = [int(s) for s in sizes.split("_")]
    offset = [int(o) for o in offsets.split("_")]
    if len(size) != ndim or len(offset) != ndim:
        raise ApiError(f"size and offset need {ndim} integers each (x first)")
    nbytes = math.prod(size) * array.dtype.itemsize
    if nbytes > MAX_RAW_BYTES:
        raise TooLarge(f"the subvolume has {nbytes} bytes; the limit is {MAX_RAW_BYTES} bytes")
    shape = tuple(reversed(size))
    start = tuple(reversed(offset))
    for axis, (s0, n, full) in enumerate(zip(start, shape, array.shape, strict=True)):
        if s0 < 0 or s0 + n > full:
            raise ApiError(f"the subvolume leaves the array on numpy axis {axis} "
                           f"({s0}..{s0 + n} of {full})")
    return tuple(slice(s0, s0 + n) for s0, n in zip(start, shape, strict=True)), shape


def plan_slabs(selection: Sequence[slice], chunks: Sequence[int], itemsize: int,
               target: int) -> Iterator[tuple[slice, ...]]:
    """Boxes that tile ``selection`` in C order, each at most ``target`` bytes.

    Concatenating the boxes' C-order bytes gives the selection's C-order bytes. Along the
    first axis that must be split, boxes are whole multiples of the chunk size, aligned to
    the chunk grid, when one chunk row fits in ``target``; thinner otherwise (each chunk is
    then decoded more than once, the price of the bound). ``target`` must be at least
    ``itemsize``.
    """
    yield from _slabs(tuple(selection), (), chunks, itemsize, target)


def _slabs(rest: tuple[slice, ...], prefix: tuple[slice, ...], chunks: Sequence[int],
           itemsize: int, target: int) -> Iterator[tuple[slice, ...]]:
    if not rest:
        yield prefix
        return
    axis = len(prefix)
    row_bytes = math.prod(s.stop - s.start for s in rest[1:]) * itemsize
    lo, hi = rest[0].start, rest[0].stop
    if (hi - lo) * row_bytes <= target:
        yield prefix + rest
        return
    if row_bytes > target:  # even one index along this axis is too much: split the next
        for i in range(lo, hi):
            yield from _slabs(rest[1:], (*prefix, slice(i, i + 1)), chunks, itemsize, target)
        return
    chunk = chunks[axis]
    fit = target // row_bytes
    start = lo
    while start < hi:
        if fit >= chunk:
            stop = (start // chunk + fit // chunk) * chunk
        else:
            stop = min(start + fit, (start // chunk + 1) * chunk)
        stop = min(stop, hi)
        yield (*prefix, slice(start, stop), *rest[1:])
        start = stop


def _wire_dtype(array: DicedArray) -> np.dtype[np.generic]:
    dtype: np.dtype[np.generic] = array.dtype.newbyteorder("<")
    return dtype


def _slab_bytes(array: DicedArray, box: tuple[slice, ...]) -> bytes:
    data = np.ascontiguousarray(array[box], dtype=_wire_dtype(array))
    return data.tobytes()


async def _slabs_of(array: DicedArray, boxes: Iterator[tuple[slice, ...]]) -> \
        AsyncIterator[bytes]:
    for box in boxes:
        data = await run_in_threadpool(_slab_bytes, array, box)
        yield data
        del data
        # An empty piece returns once the server has handed the previous slab to the socket,
        # so the next slab is read only then: at most two slabs per request in memory.
        yield b""


class _LeasedStream(StreamingResponse):
    def __init__(self, content: AsyncIterator[bytes], lease: Lease, length: int) -> None:
        super().__init__(content, media_type=_OCTETS, headers={"Content-Length": str(length)})
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.lease.release()


def _target(request: Request) -> tuple[DicedArray, tuple[slice, ...], tuple[int, ...]]:
    """The array, selection and shape a raw request names (run in the thread pool)."""
    array = array_of(repo_at(request, request.path_params["uuid"]), request.path_params["array"])
    return (array, *raw_selection(request, array))


async def raw_get(request: Request) -> Response:
    array, selection, shape = await run_in_threadpool(_target, request)
    total = math.prod(shape) * array.dtype.itemsize
    if request.method == "HEAD":
        return Response(media_type=_OCTETS, headers={"Content-Length": str(total)})
    limits: ServerLimits = request.app.state.limits
    slab = min(total, limits.slab_bytes)
    lease = await budget(request).acquire(2 * slab, "this raw read")
    boxes = plan_slabs(selection, array.chunks, array.dtype.itemsize, limits.slab_bytes)
    return _LeasedStream(_slabs_of(array, boxes), lease, total)


async def raw_post(request: Request) -> Response:
    if not writes_allowed(request):
        raise WritesDisabled()

    array, selection, shape = await run_in_threadpool(_target, request)
    expected = math.prod(shape) * array.dtype.itemsize
    async with await budget(request).acquire(expected, "this raw write"):
        body = await read_body(request, limit=expected, expect=_OCTETS, exact=expected)
        data = np.frombuffer(body, dtype=_wire_dtype(array)).reshape(shape)

        def write() -> None:
            array[selection] = data

        await run_in_threadpool(write)
    return Response(status_code=204)
