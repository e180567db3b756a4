"""Every version as a read-only zarr v3 hierarchy over HTTP: ``/zarr/{repo}/{version}/{key}``.

Keys are those of :meth:`diced.DicedRepo.zarr_store` (``zarr.json``, ``<array>/zarr.json``,
``<array>/c/i/j/k``), so zarr-python's HTTP store, TensorStore and neuroglancer open any
version as they would a static zarr v3 directory. A missing key (a chunk holding only the
fill value) is a 404, which zarr reads as the fill value. Single byte ranges are honoured.
Cross-origin reads are allowed only for the origins of the server's access policy
(:mod:`diced_viewer._security` adds the CORS headers and answers preflights).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from zarr.core.buffer import default_buffer_prototype

from diced.zarr_store import NodeStore
from diced_viewer._errors import ApiError, error_response
from diced_viewer._limits import leased
from diced_viewer._repos import store_of

__all__ = ["zarr_routes"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ARRAY_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}/(zarr\.json|c(/\d{1,12})+)$")


def _node_store(request: Request) -> NodeStore:
    repo = store_of(request).open_repo(request.path_params["repo"], readonly=True)
    repo.change_version(request.path_params["version"])
    return repo.zarr_store()


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, stop)`` of a single-range ``Range`` header; ``None`` when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ApiError(f"unsupported Range {header[:80]!r}: use one range, bytes=START-END")
    first, last = match.groups()
    if first == "":
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = size if last == "" else min(size, int(last) + 1)
    return (start, stop) if start < stop else None


async def _chunk_bytes(node_store: NodeStore, key: str) -> int:
    """Decoded size of the chunk ``key`` names (0 for a ``zarr.json``), from its metadata."""
    if key.endswith("zarr.json"):
        return 0
    meta = await node_store.get(key.split("/", 1)[0] + "/zarr.json",
                                default_buffer_prototype())
    if meta is None:
        return 0
    info = json.loads(meta.to_bytes())
    shape: list[int] = info["chunk_grid"]["configuration"]["chunk_shape"]
    itemsize: int = np.dtype(info["data_type"]).itemsize
    return math.prod(shape) * itemsize


async def zarr_key(request: Request) -> Response:
    key = request.path_params["key"]
    if key != "zarr.json" and not _ARRAY_KEY.match(key):
        return error_response(404, f"no key {key[:80]!r}")
    node_store = await run_in_threadpool(_node_store, request)

    async def answer() -> Response:
        buffer = await node_store.get(key, default_buffer_prototype())
        if buffer is None:
            return error_response(404, f"no key {key!r} (fill value)")
        data = buffer.to_bytes()
        del buffer
        media = "application/json" if key.endswith("zarr.json") else "application/octet-stream"
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        range_header = request.headers.get("range")
        if range_header is None:
            return Response(data, media_type=media, headers=headers)
        span = _byte_range(range_header, len(data))
        if span is None:
            return error_response(416, f"the range {range_header[:80]!r} is outside the "
                                  f"{len(data)} bytes of {key!r}",
                                  {**headers, "Content-Range": f"bytes */{len(data)}"})
        start, stop = span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        return Response(data[start:stop], status_code=206, media_type=media, headers=headers)

    # The chunk as read and as bytes (a compressed chunk is smaller than its decoded size).
    return await leased(request, 2 * await _chunk_bytes(node_store, key), "this chunk", answer)


def zarr_routes() -> list[Route]:
    return [Route("/zarr/{repo}/{version}/{key:path}", zarr_key, methods=["GET", "HEAD"])]
