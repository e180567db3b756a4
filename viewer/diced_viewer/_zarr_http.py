"""Every version as a read-only zarr v3 hierarchy over HTTP: ``/zarr/{repo}/{version}/{key}``.

Keys are those of :meth:`diced.DicedRepo.zarr_store` (``zarr.json`` with the version's
metadata consolidated, ``<array>/zarr.json``, chunk keys in each array's encoding, the
OME-NGFF view ``.ome/<array>/...``, and any other zarr object stored in the version), so
zarr-python's HTTP store, xarray, TensorStore, ome-zarr readers and neuroglancer open any
version as they would a static zarr v3 directory. A missing key (a chunk holding only the
fill value) is a 404, which zarr reads as the fill value. Single byte ranges are honoured.
The version root and the ``.ome/`` directories answer a ``GET`` with an HTML index of their
children, which is how fsspec's HTTP filesystem lists a directory.
Cross-origin reads are allowed only for the origins of the server's access policy
(:mod:`diced_viewer._security` adds the CORS headers and answers preflights).
"""

from __future__ import annotations

import html
import json
import math
import re
from urllib.parse import quote

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from zarr.core.buffer import default_buffer_prototype

from diced.zarr_store import NodeStore
from diced.zarr_views import OME_PREFIX
from diced_viewer._errors import ApiError, error_response
from diced_viewer._limits import hold, leased
from diced_viewer._repos import store_of

__all__ = ["zarr_routes"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Longest key served (array names have 200 characters; keys of other objects are bounded too).
_MAX_KEY = 1024


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


def _array_metadata_key(key: str) -> str | None:
    """The ``zarr.json`` of the array whose chunk ``key`` may be (``None``: not a chunk)."""
    if key.endswith("zarr.json"):
        return None
    depth = 3 if key.startswith(OME_PREFIX + "/") else 1
    parts = key.split("/", depth)
    return "/".join(parts[:depth]) + "/zarr.json" if len(parts) > depth else None


async def _chunk_bytes(node_store: NodeStore, key: str) -> int | None:
    """Decoded size of chunk ``key``, from its array's metadata (``None``: not a chunk)."""
    meta_key = _array_metadata_key(key)
    meta = None if meta_key is None else await node_store.get(meta_key,
                                                               default_buffer_prototype())
    if meta is None:
        return None
    info = json.loads(meta.to_bytes())
    if info.get("node_type") != "array":
        return None
    shape: list[int] = info["chunk_grid"]["configuration"]["chunk_shape"]
    itemsize: int = np.dtype(info["data_type"]).itemsize
    return math.prod(shape) * itemsize


def _is_directory(key: str) -> bool:
    """Whether ``key`` may name a directory worth an index (the root and the ``.ome/`` view)."""
    key = key.rstrip("/")
    return key == "" or key == OME_PREFIX or (key.startswith(OME_PREFIX + "/")
                                              and key.count("/") == 1)


async def _index(request: Request, node_store: NodeStore, key: str) -> Response | None:
    """An HTML index of the children of directory ``key`` (``None`` if it has none)."""
    children = [child async for child in node_store.list_dir(key.rstrip("/"))]
    if not children:
        return None
    base = request.url.path if request.url.path.endswith("/") else request.url.path + "/"
    links = "".join(f'<li><a href="{html.escape(base + quote(child))}">{html.escape(child)}'
                    "</a></li>\n" for child in children)
    page = f"<!DOCTYPE html>\n<title>{html.escape(base)}</title>\n<ul>\n{links}</ul>\n"
    return Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})


async def zarr_key(request: Request) -> Response:
    key = request.path_params.get("key", "")
    if len(key) > _MAX_KEY or "\x00" in key:
        return error_response(404, f"no key {key[:80]!r}")
    node_store = await run_in_threadpool(_node_store, request)
    if _is_directory(key) and not key.endswith("zarr.json"):
        index = await _index(request, node_store, key)
        if index is not None:
            return index

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

    decoded = await _chunk_bytes(node_store, key)
    if decoded is None:  # metadata and other small objects: counted once read
        response = await answer()
        return await hold(request, len(getattr(response, "body", b"")), "this object", response)
    # The chunk as read and as bytes (a compressed chunk is smaller than its decoded size).
    return await leased(request, 2 * decoded, "this chunk", answer)


def zarr_routes() -> list[Route]:
    return [Route("/zarr/{repo}/{version}", zarr_key, methods=["GET", "HEAD"]),
            Route("/zarr/{repo}/{version}/{key:path}", zarr_key, methods=["GET", "HEAD"])]
