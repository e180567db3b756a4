"""Version-control routes: diff, merge conflicts, merge, and DVID's ``/api/repo/{uuid}/merge``.

Diffs and conflicts are reads; merges create a version and need ``--allow-writes``. A
merge that finds conflicts it was not told to resolve answers 409 with every conflict
(see :func:`~diced_viewer._errors.conflict_json`) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diced import DicedRepo, VersionDiff
from diced_viewer._api import MAX_DIFF_CHUNKS, json_body
from diced_viewer._errors import ApiError, WritesDisabled, conflict_json
from diced_viewer._repos import repo_at, store_of, writes_allowed

__all__ = ["diff_json", "version_routes"]

#: DVID's merge types: conflict-free (conflicts fail) or priority order (first wins).
_DVID_MERGE_TYPES: dict[str, Literal["fail", "ours"]] = {"conflict-free": "fail",
                                                          "priority": "ours"}


def diff_json(diff: VersionDiff, voxels: bool) -> dict[str, Any]:
    """A :class:`VersionDiff` as JSON; chunk lists stop after ``MAX_DIFF_CHUNKS`` in all."""
    budget = MAX_DIFF_CHUNKS
    truncated = False
    arrays = []
    for name, change in diff.arrays.items():
        entry: dict[str, Any] = {"name": name, "status": change.status,
                                 "metadata_changed": change.metadata_changed,
                                 "counts": {"added": len(change.added),
                                            "removed": len(change.removed),
                                            "modified": len(change.modified)}}
        for kind in ("added", "removed", "modified"):
            chunks: Sequence[tuple[int, ...]] = getattr(change, kind)
            truncated |= len(chunks) > budget
            entry[kind] = [list(c) for c in chunks[:budget]]
            budget -= len(entry[kind])
        if voxels:
            detail = diff.voxels(name)
            entry["voxels"] = [{"chunk": list(c), "voxels": v.voxels,
                                "box": None if v.box is None else [list(b) for b in v.box]}
                               for c, v in sorted(detail.items())[:MAX_DIFF_CHUNKS]]
        arrays.append(entry)
    return {"a": diff.a, "b": diff.b, "arrays": arrays, "truncated": truncated,
            "files": {"added": list(diff.files_added), "removed": list(diff.files_removed),
                      "modified": list(diff.files_modified)}}


def _repo(request: Request) -> DicedRepo:
    return store_of(request).open_repo(request.path_params["repo"], readonly=True)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") in ("1", "true", "yes")


def _versions(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(f"{what} must be a list of two or more version strings")
    return value


def repo_diff(request: Request) -> Response:
    repo = _repo(request)
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if not a or not b:
        raise ApiError("give the two versions to compare as ?a=REF&b=REF")
    arrays = request.query_params.getlist("array") or None
    return JSONResponse(diff_json(repo.diff(a, b, arrays=arrays), _flag(request, "voxels")))


def repo_conflicts(request: Request) -> Response:
    repo = _repo(request)
    raw = request.query_params.get("versions", "")
    versions = [v for v in raw.split(",") if v]
    array = request.query_params.get("array")
    conflicts = repo.merge_conflicts(versions)
    return JSONResponse({"versions": versions, "conflicts": [
        conflict_json(c) for c in conflicts if array is None or c.name == array]})


async def repo_merge(request: Request) -> Response:
    if not writes_allowed(request):
        raise WritesDisabled()
    body = await json_body(request)
    versions = _versions(body.get("versions"), "versions")
    message, on_conflict = body.get("message", ""), body.get("on_conflict", "fail")
    if on_conflict not in ("fail", "ours", "theirs"):
        raise ApiError("on_conflict must be 'fail', 'ours' or 'theirs'")
    name = body.get("name") or None

    def merge() -> str:
        repo = store_of(request).open_repo(request.path_params["repo"])
        return repo.merge(versions, message, on_conflict=on_conflict, name=name,
                          progress=False)

    return JSONResponse({"uuid": await run_in_threadpool(merge)}, status_code=201)


async def dvid_merge(request: Request) -> Response:
    """DVID's ``POST /api/repo/{uuid}/merge``: ``{mergeType, parents, note}`` → ``{child}``."""
    if not writes_allowed(request):
        raise WritesDisabled()
    body = await json_body(request)
    parents = _versions(body.get("parents"), "'parents'")
    merge_type = body.get("mergeType")
    if not isinstance(merge_type, str) or merge_type not in _DVID_MERGE_TYPES:
        raise ApiError("'mergeType' must be 'conflict-free' (conflicts fail) or 'priority' "
                       "(the first parent listed wins each conflict)")
    note = body.get("note", "")

    def merge() -> str:
        repo = repo_at(request, request.path_params["uuid"])
        return repo.merge(parents, note, on_conflict=_DVID_MERGE_TYPES[merge_type],
                          progress=False)

    return JSONResponse({"child": await run_in_threadpool(merge)})


def version_routes() -> list[Route]:
    """The routes of this module."""
    return [
        Route("/api/repos/{repo}/diff", repo_diff),
        Route("/api/repos/{repo}/conflicts", repo_conflicts),
        Route("/api/repos/{repo}/merge", repo_merge, methods=["POST"]),
        Route("/api/repo/{uuid}/merge", dvid_merge, methods=["POST"]),
    ]
