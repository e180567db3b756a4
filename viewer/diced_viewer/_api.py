"""The JSON and DVID-compatible HTTP API over one :class:`~diced.DicedStore`.

Handlers are plain functions; Starlette runs them in its thread pool because diced's API
is synchronous. Each request opens the repo it needs, so a version locked or branched by
another process is seen at once.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diced import __version__
from diced.array import DicedArray
from diced.lifecycle import VersionUsage
from diced.repo import DicedRepo, NodeInfo
from diced.store import DicedStore
from diced_viewer._errors import ApiError, WritesDisabled
from diced_viewer._limits import hold, leased, read_body
from diced_viewer._repos import array_of, repo_at, store_of, writes_allowed
from diced_viewer._slices import (
    MAX_PLANE_EDGE,
    PNG_BYTES_PER_PIXEL,
    Plane,
    PlanePlan,
    bounds,
    plan_plane,
    read_plane,
    to_png,
)

__all__ = ["MAX_BODY_BYTES", "MAX_DIFF_CHUNKS", "api_routes", "json_body"]

#: Largest JSON request body (lock and branch messages), in bytes.
MAX_BODY_BYTES = 64 * 2**10
#: Most changed chunks a diff lists.
MAX_DIFF_CHUNKS = 200_000
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def _node_json(node: NodeInfo) -> dict[str, Any]:
    return {"uuid": node.uuid, "parents": list(node.parents), "children": list(node.children),
            "branch": node.branch, "note": node.note, "locked": node.locked,
            "created": node.created, "locked_at": node.locked_at,
            "lock_message": node.lock_message, "is_branch_leaf": node.is_branch_leaf}


def _repo_summary(store: DicedStore, name: str) -> dict[str, Any]:
    repo = store.open_repo(name, readonly=True)
    nodes = repo.list_nodes()
    updated = max((n.locked_at or n.created for n in nodes), default=repo.created)
    return {"name": name, "uuid": repo.repo_uuid, "root": nodes[0].uuid if nodes else None,
            "description": repo.description, "created": repo.created, "updated": updated,
            "node_count": len(nodes), "master_leaf": repo.uuid}


def _array_json(array: DicedArray, usage: VersionUsage) -> dict[str, Any]:
    extents = array.get_extents()
    stored = usage.array(array.name)
    return {
        "name": array.name, "dtype": str(array.dtype), "shape": list(array.shape),
        "chunks": list(array.chunks), "storage_chunks": list(array.storage_chunks),
        "ndim": array.ndim, "islabel3D": array.islabel3D,
        "unbounded": array.unbounded, "extents": [[s.start, s.stop] for s in extents],
        "bounds": [list(b) for b in bounds(array)],
        "stored_chunks": 0 if stored is None else stored.chunks,
        "stored_bytes": 0 if stored is None else stored.stored.bytes,
        "unique_bytes": 0 if stored is None else stored.unique.bytes,
        "locked": array.locked,
    }


def _arrays_json(repo: DicedRepo) -> list[dict[str, Any]]:
    """Every array of the repo's current version, with its stored (compressed) bytes."""
    usage = repo.storage_report(repo.uuid).versions[0]
    return [_array_json(repo.get_array(name), usage) for name, _ in repo.list_instances()]


async def json_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, limit=MAX_BODY_BYTES, expect="application/json")
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(f"the request body is not JSON: {exc}") from exc
    except RecursionError:
        raise ApiError("the request body is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    return data


# -- repos and nodes ---------------------------------------------------------------------------


def server_info(request: Request) -> Response:
    return JSONResponse({"location": store_of(request).location,
                         "writable": writes_allowed(request), "diced_version": __version__,
                         "neuroglancer": request.app.state.neuroglancer is not None})


def list_repos(request: Request) -> Response:
    store = store_of(request)
    return JSONResponse([_repo_summary(store, name) for name, _ in store.list_repos()])


def repo_info(request: Request) -> Response:
    name = request.path_params["repo"]
    store = store_of(request)
    info = _repo_summary(store, name)
    nodes = store.open_repo(name, readonly=True).list_nodes()
    info["nodes"] = [_node_json(n) for n in nodes]
    info["edges"] = [[p, n.uuid] for n in nodes for p in n.parents]
    info["tags"] = [{"name": t.name, "uuid": t.uuid, "message": t.message,
                     "created": t.created} for t in store.open_repo(name).list_tags()]
    info["writable"] = writes_allowed(request)
    return JSONResponse(info)


def node_info(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    record = repo.node_record()
    files = repo.list_files()
    readme = None
    if "README.md" in files:
        text = repo.download_filedata("README.md").decode("utf-8", "replace")
        readme = _markdown.render(text)
    node = next(n for n in repo.list_nodes() if n.uuid == repo.uuid)
    return JSONResponse({
        **_node_json(node), "repo": repo.name, "repo_uuid": repo.repo_uuid,
        "arrays": _arrays_json(repo),
        "files": files, "readme_html": readme,
        "log": [{"uuid": u, "message": m} for u, m in repo.get_commit_log()],
        "note": record.note, "writable": writes_allowed(request) and not node.locked,
    })


def node_arrays(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    return JSONResponse(_arrays_json(repo))


async def lock_node(request: Request) -> Response:
    if not writes_allowed(request):
        raise WritesDisabled()
    body = await json_body(request)
    message = body.get("message", "")
    def lock() -> str:
        repo = repo_at(request, request.path_params["uuid"])
        repo.lock_node(message)
        return repo.uuid

    return JSONResponse({"uuid": await run_in_threadpool(lock), "locked": True})


async def branch_node(request: Request) -> Response:
    if not writes_allowed(request):
        raise WritesDisabled()
    body = await json_body(request)
    # DVID's clients send {"branch": ..., "note": ...} and read "child" (docs/viewer.md).
    message = body.get("message", body.get("note", ""))
    name = body.get("name") or body.get("branch") or None
    def branch() -> str:
        return repo_at(request, request.path_params["uuid"]).create_branch(message, name)

    child = await run_in_threadpool(branch)
    return JSONResponse({"uuid": child, "child": child}, status_code=201)


# -- files ---------------------------------------------------------------------------------------


def file_keys(request: Request) -> Response:
    return JSONResponse(repo_at(request, request.path_params["uuid"]).list_files())


async def file_data(request: Request) -> Response:
    def read() -> bytes:
        return repo_at(request, request.path_params["uuid"]).download_filedata(name)

    name = request.path_params["name"]
    data = await run_in_threadpool(read)
    quoted = name.encode("ascii", "replace").decode().replace('"', "_")
    response = Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{quoted}"'})
    # diced's API tells a file's size only by reading it, so the file is counted once read,
    # without waiting: a busy server drops it at once (503) rather than hold it in a queue.
    return await hold(request, len(data), "this file", response)


# -- arrays --------------------------------------------------------------------------------------


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(f"{name} must be an integer") from exc
    if not lo <= value <= hi:
        raise ApiError(f"{name} must be in {lo}..{hi}")
    return value


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ApiError(f"{name} must be a number") from exc
    if not math.isfinite(value):
        raise ApiError(f"{name} must be finite")
    return value


def _plane_plan(request: Request) -> tuple[DicedArray, PlanePlan]:
    repo = repo_at(request, request.path_params["uuid"])
    array = array_of(repo, request.path_params["array"])
    ndim = array.ndim
    rows = _int_param(request, "rows", max(ndim - 2, 0), 0, 31)
    cols = _int_param(request, "cols", max(ndim - 1, 0), 0, 31)
    width = _int_param(request, "width", 1024, 1, MAX_PLANE_EDGE)
    height = _int_param(request, "height", 1024, 1, MAX_PLANE_EDGE)
    raw_index = request.query_params.get("index")
    if raw_index:
        try:
            index = [int(v) for v in raw_index.split(",")]
        except ValueError as exc:
            raise ApiError("index is integers separated by commas, one per axis") from exc
    else:
        index = [(lo + hi) // 2 for lo, hi in bounds(array)]
    region: tuple[int, int, int, int] | None = None
    raw_region = request.query_params.get("region")
    if raw_region:
        try:
            r0, r1, c0, c1 = (int(v) for v in raw_region.split(","))
        except ValueError as exc:
            raise ApiError("region is four integers: row_start,row_stop,col_start,col_stop") \
                from exc
        region = (r0, r1, c0, c1)
    return array, plan_plane(array, rows, cols, index, width, height, region)


def _plane_headers(plane: Plane) -> dict[str, str]:
    return {"X-Diced-Shape": f"{plane.data.shape[0]},{plane.data.shape[1]}",
            "X-Diced-Origin": f"{plane.origin[0]},{plane.origin[1]}",
            "X-Diced-Step": f"{plane.step[0]},{plane.step[1]}",
            "X-Diced-Dtype": plane.data.dtype.newbyteorder("<").str}


async def slice_png(request: Request) -> Response:
    array, plan = await run_in_threadpool(_plane_plan, request)
    label = request.query_params.get("label", "auto")
    as_label = array.islabel3D if label == "auto" else label in ("1", "true", "yes")
    lo, hi = _float_param(request, "lo"), _float_param(request, "hi")

    def render() -> Response:
        plane = read_plane(array, plan)
        png = to_png(plane, label=as_label, lo=lo, hi=hi)
        return Response(png, media_type="image/png", headers=_plane_headers(plane))

    # The plane as read and transposed, plus the image and PNG buffers.
    nbytes = plan.pixels * (2 * array.dtype.itemsize + PNG_BYTES_PER_PIXEL)
    return await leased(request, nbytes, "this plane image",
                        lambda: run_in_threadpool(render))


async def slice_raw(request: Request) -> Response:
    array, plan = await run_in_threadpool(_plane_plan, request)
    # Browsers have no float16 typed array; float32 holds every float16 value exactly.
    wire = np.dtype("<f4") if array.dtype == np.float16 else array.dtype.newbyteorder("<")

    def render() -> Response:
        plane = read_plane(array, plan)
        plane = Plane(np.ascontiguousarray(plane.data, dtype=wire), plane.rows_axis,
                      plane.cols_axis, plane.origin, plane.step)
        return Response(plane.data.tobytes(), media_type="application/octet-stream",
                        headers=_plane_headers(plane))

    # The plane as read and transposed, in the wire dtype, and as bytes.
    nbytes = plan.pixels * (2 * array.dtype.itemsize + 2 * wire.itemsize)
    return await leased(request, nbytes, "this plane", lambda: run_in_threadpool(render))


def array_diff(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    name = request.path_params["array"]
    mine = array_of(repo, name)
    other_uuid = request.query_params.get("other", "")
    other_repo = repo_at(request, other_uuid)
    if other_repo.repo_uuid != repo.repo_uuid:
        raise ApiError("compare versions of the same repo")
    # Both chunk trees walked together: the cost is the changed chunks, not the array.
    change = repo.diff(other_repo.uuid, repo.uuid, arrays=[name]).arrays.get(name)
    changed = [] if change is None else change.chunks
    return JSONResponse({"uuid": repo.uuid, "other": other_repo.uuid,
                         "chunks": list(mine.storage_chunks),
                         "truncated": len(changed) > MAX_DIFF_CHUNKS,
                         "changed": [list(k) for k in changed[:MAX_DIFF_CHUNKS]]})


def api_routes() -> list[Route]:
    node = "/api/node/{uuid}"
    return [
        Route("/api/server", server_info),
        Route("/api/repos", list_repos),
        Route("/api/repos/{repo}", repo_info),
        Route(node, node_info),
        Route(node + "/arrays", node_arrays),
        Route(node + "/lock", lock_node, methods=["POST"]),
        Route(node + "/branch", branch_node, methods=["POST"]),
        Route(node + "/.files/keys", file_keys),
        Route(node + "/.files/key/{name:path}", file_data),
        Route(node + "/{array}/slice.png", slice_png),
        Route(node + "/{array}/slice.raw", slice_raw),
        Route(node + "/{array}/diff", array_diff),
    ]
