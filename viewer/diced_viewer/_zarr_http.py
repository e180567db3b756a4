"""Every version as a read-only zarr v3 hierarchy over HTTP: ``/zarr/{repo}/{version}/{key}``.

Keys are those of :meth:`diced.DicedRepo.zarr_store` (``zarr.json``, ``<array>/zarr.json``,
``<array>/c/i/j/k``), so zarr-python's HTTP store, TensorStore and neuroglancer open any
version as they would a static zarr v3 directory. A missing key (a chunk holding only the
fill value) is a 404, which zarr reads as the fill value. Single byte ranges are honoured;
CORS is open because the data is read-only.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from zarr.core.buffer import default_buffer_prototype

from diced.store import DicedStore
from diced.zarr_store import NodeStore
from diced_viewer._errors import ApiError

__all__ = ["zarr_routes"]

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ARRAY_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}/(zarr\.json|c(/\d{1,12})+)$")


def _node_store(request: Request) -> NodeStore:
    store: DicedStore = request.app.state.store
    repo = store.open_repo(request.path_params["repo"], readonly=True)
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


async def zarr_key(request: Request) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=_CORS)
    key = request.path_params["key"]
    if key != "zarr.json" and not _ARRAY_KEY.match(key):
        return JSONResponse({"error": f"no key {key[:80]!r}", "status": 404}, 404, headers=_CORS)
    node_store = await run_in_threadpool(_node_store, request)
    buffer = await node_store.get(key, default_buffer_prototype())
    if buffer is None:
        return JSONResponse({"error": f"no key {key!r} (fill value)", "status": 404}, 404,
                            headers=_CORS)
    data = buffer.to_bytes()
    media = "application/json" if key.endswith("zarr.json") else "application/octet-stream"
    headers = {**_CORS, "Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    range_header = request.headers.get("range")
    if range_header is None:
        return Response(data, media_type=media, headers=headers)
    span = _byte_range(range_header, len(data))
    if span is None:
        return Response(status_code=416, headers={**headers,
                                                  "Content-Range": f"bytes */{len(data)}"})
    start, stop = span
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return Response(data[start:stop], status_code=206, media_type=media, headers=headers)


def zarr_routes() -> list[Route]:
    return [Route("/zarr/{repo}/{version}/{key:path}", zarr_key,
                  methods=["GET", "HEAD", "OPTIONS"])]
