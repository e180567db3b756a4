"""DVID's server, repo, node and instance-info endpoints, in DVID's request and response shapes.

Followed from DVID's ``server/web.go`` and its datatype help texts (docs/viewer.md lists what
is served and what is not). The mapping:

- a DVID *repo* is a diced repo (its alias is the repo's name, its UUID the root node's);
- a DVID *node* is a version; the master branch is ``""`` in node JSON, as in DVID;
- a DVID *data instance* is an array (type ``uint8blk``, ``uint16blk``, ``uint32blk``,
  ``uint64blk``, ``labelblk`` for label arrays, ``float32blk``) or a keyvalue instance made
  of files (:mod:`diced_viewer._dvid_kv`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diced import __version__
from diced.array import DicedArray
from diced.errors import InvalidInputError
from diced.repo import DicedRepo, NodeInfo
from diced.store import DicedStore
from diced_viewer._api import _array_json as array_json
from diced_viewer._dvid_kv import keyvalue_instances
from diced_viewer._errors import ApiError, WritesDisabled
from diced_viewer._limits import read_body
from diced_viewer._repos import array_of, repo_at, store_of, writes_allowed
from diced_viewer._security import media_type

__all__ = ["DVID_TYPES", "dvid_info", "dvid_json_body", "dvid_routes", "type_name"]

_TYPE_URL = "github.com/janelia-flyem/dvid/datatype/"
#: DVID type names diced serves, with DVID's type URLs.
DVID_TYPES = {
    "uint8blk": _TYPE_URL + "imageblk/uint8.go",
    "uint16blk": _TYPE_URL + "imageblk/uint16.go",
    "uint32blk": _TYPE_URL + "imageblk/uint32.go",
    "uint64blk": _TYPE_URL + "imageblk/uint64.go",
    "float32blk": _TYPE_URL + "imageblk/float32.go",
    "labelblk": _TYPE_URL + "labelblk",
    "keyvalue": _TYPE_URL + "keyvalue",
}
_BLK = {np.dtype(np.uint8): "uint8blk", np.dtype(np.uint16): "uint16blk",
        np.dtype(np.uint32): "uint32blk", np.dtype(np.uint64): "uint64blk",
        np.dtype(np.float32): "float32blk"}
_STARTED = time.monotonic()
_AXIS_LABELS = ["X", "Y", "Z"]
_MAX_JSON = 64 * 2**10


def type_name(array: DicedArray) -> str:
    """DVID's type name for ``array`` (``labelblk`` for label arrays)."""
    if array.islabel3D:
        return "labelblk"
    return _BLK.get(array.dtype, f"diced-{array.dtype}")


async def dvid_json_body(request: Request) -> dict[str, Any]:
    """A DVID request's JSON object body (DVID clients often send JSON without a type)."""
    kind = media_type(request.headers.get("content-type"))
    expect = "application/json" if kind == "application/json" else "application/octet-stream"
    raw = await read_body(request, limit=_MAX_JSON, expect=expect)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ApiError(f"Malformed JSON request in body: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    return data


def _need_writes(request: Request) -> None:
    if not writes_allowed(request):
        raise WritesDisabled()


# -- instance info ---------------------------------------------------------------------------


def _unit_names(array: DicedArray) -> list[str]:
    unit = array.unit
    return [f"{unit}s" if unit else "" for _ in range(array.ndim)]


def dvid_info(repo: DicedRepo, array: DicedArray) -> dict[str, Any]:
    """DVID's ``info`` of an array: ``Base``, ``Extended`` and ``Extents``, axes x first."""
    extents = [(s.start, s.stop) for s in reversed(array.get_extents())]
    written = all(hi > lo for lo, hi in extents)
    block = list(reversed(array.chunks))
    min_point = [lo for lo, _ in extents] if written else None
    max_point = [hi - 1 for _, hi in extents] if written else None
    name = type_name(array)
    kind = str(np.dtype(np.uint64) if name == "labelblk" else array.dtype)
    return {
        "Base": {"TypeName": name, "TypeURL": DVID_TYPES.get(name, "diced"),
                 "TypeVersion": "diced-" + __version__, "DataUUID": repo.uuid,
                 "Name": array.name, "RepoUUID": _root_of(repo),
                 "Compression": "blosc", "Checksum": "NoChecksum", "Syncs": [],
                 "Versioned": True, "KVStore": "diced", "LogStore": "no mutation log set",
                 "Tags": {}},
        "Extended": {
            "Values": [{"DataType": kind, "Label": name.removesuffix("blk")}],
            "Interpolable": name != "labelblk", "BlockSize": block,
            "VoxelSize": list(reversed(array.voxel_size)), "VoxelUnits": _unit_names(array),
            "MinPoint": min_point, "MaxPoint": max_point,
            "MinIndex": None if min_point is None else [p // b for p, b in
                                                        zip(min_point, block, strict=True)],
            "MaxIndex": None if max_point is None else [p // b for p, b in
                                                        zip(max_point, block, strict=True)],
            "Background": 0, "GridStore": "", "ScaleLevel": 0,
            # diced's own addition: every axis with its label, length and block size.
            "Axes": [{"Label": label, "Size": n, "BlockSize": b} for label, n, b in zip(
                [*_AXIS_LABELS, *(f"A{i}" for i in range(3, array.ndim))][:array.ndim],
                reversed(array.shape), block, strict=True)],
        },
        "Extents": {"MinPoint": min_point, "MaxPoint": max_point},
    }


def _root_of(repo: DicedRepo) -> str:
    return repo.get_commit_log()[0][0]


def instance_info(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    name = request.path_params["instance"]
    kv = keyvalue_instances(repo.list_files())
    if name in kv or name == ".files":
        return JSONResponse({"Base": {
            "TypeName": "keyvalue", "TypeURL": DVID_TYPES["keyvalue"], "TypeVersion": "0.2",
            "DataUUID": repo.uuid, "Name": name, "RepoUUID": _root_of(repo),
            "Compression": "none", "Checksum": "NoChecksum", "Syncs": [], "Versioned": True,
            "KVStore": "diced", "LogStore": "no mutation log set", "Tags": {}},
            "Extended": {}})
    array = array_of(repo, name)
    usage = repo.storage_report(repo.uuid).versions[0]
    return JSONResponse({**array_json(array, usage), **dvid_info(repo, array)})


# -- server ----------------------------------------------------------------------------------


def server_info(request: Request) -> Response:
    info = {"Cores": str(os.cpu_count() or 1), "Maximum Cores": str(os.cpu_count() or 1),
            "Datastore Version": "diced", "DVID Version": f"diced {__version__}",
            "Storage backend": store_of(request).location,
            "Server time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "Server uptime": f"{time.monotonic() - _STARTED:.0f}s",
            "Host": request.headers.get("host", ""), "Note": "diced (DVID-compatible subset)"}
    if not writes_allowed(request):
        info["Mode"] = "read only"
    return JSONResponse(info)


def server_types(request: Request) -> Response:
    store = store_of(request)
    used: dict[str, str] = {}
    for name, _ in store.list_repos():
        repo = store.open_repo(name, readonly=True)
        for array_name, _ in repo.list_instances():
            kind = type_name(repo.get_array(array_name))
            used[kind] = DVID_TYPES.get(kind, "diced")
        if repo.list_files():
            used["keyvalue"] = DVID_TYPES["keyvalue"]
    return JSONResponse(used)


def compiled_types(request: Request) -> Response:
    return JSONResponse(DVID_TYPES)


# -- repos and nodes --------------------------------------------------------------------------


def _node_json(node: NodeInfo, version_ids: dict[str, int], log: list[str]) -> dict[str, Any]:
    return {"Branch": "" if node.branch == "master" else node.branch, "Note": node.note,
            "Log": log, "UUID": node.uuid, "VersionID": version_ids[node.uuid],
            "Locked": node.locked, "Parents": [version_ids[p] for p in node.parents],
            "Children": [version_ids[c] for c in node.children if c in version_ids],
            "Created": node.created, "Updated": node.locked_at or node.created}


def _node_log(node: NodeInfo) -> list[str]:
    log = [f"{node.created}  note: {node.note}"] if node.note else []
    if node.locked:
        log.append(f"{node.locked_at}  commit: {node.lock_message}")
    return log


def _repo_json(store: DicedStore, name: str) -> dict[str, Any]:
    """DVID's repo JSON; instances and their extents from the leaf of master, as DVID does."""
    repo = store.open_repo(name, readonly=True)
    nodes = repo.list_nodes()
    ids = {n.uuid: i for i, n in enumerate(nodes, start=1)}
    instances: dict[str, Any] = {}
    for array_name, _ in repo.list_instances():
        array = repo.get_array(array_name)
        instances[array_name] = dvid_info(repo, array)
    for kv in keyvalue_instances(repo.list_files()):
        instances[kv] = {"Base": {"TypeName": "keyvalue", "TypeURL": DVID_TYPES["keyvalue"],
                                  "Name": kv, "DataUUID": repo.uuid, "Versioned": True},
                         "Extended": {}}
    updated = max((n.locked_at or n.created for n in nodes), default=repo.created)
    return {"Root": nodes[0].uuid if nodes else None, "Alias": name,
            "Description": repo.description, "Log": [], "Properties": {},
            "DataInstances": instances,
            "DAG": {"Root": nodes[0].uuid if nodes else None,
                    "Nodes": {n.uuid: _node_json(n, ids, _node_log(n)) for n in nodes}},
            "MutationID": 0, "SavedMutationID": 0, "Created": repo.created,
            "Updated": updated}


def repos_info(request: Request) -> Response:
    store = store_of(request)
    return JSONResponse({root: _repo_json(store, name) for name, root in store.list_repos()})


def repo_info(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    return JSONResponse(_repo_json(store_of(request), repo.name))


def repo_head(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    return Response(f"Repo available with root UUID {_root_of(repo)}\n", media_type="text/plain")


def branch_versions(request: Request) -> Response:
    repo = repo_at(request, request.path_params["uuid"])
    branch = request.path_params["name"]
    repo.change_version(f"{repo.uuid}:{branch or 'master'}")
    return JSONResponse([uuid for uuid, _ in reversed(repo.get_commit_log())])


def repo_log(request: Request) -> Response:
    repo_at(request, request.path_params["uuid"])
    return JSONResponse({"log": []})


def _node(repo: DicedRepo) -> NodeInfo:
    return next(n for n in repo.list_nodes() if n.uuid == repo.uuid)


def node_note(request: Request) -> Response:
    return JSONResponse({"note": _node(repo_at(request, request.path_params["uuid"])).note})


def node_log(request: Request) -> Response:
    return JSONResponse({"log": _node_log(_node(repo_at(request, request.path_params["uuid"])))})


def node_status(request: Request) -> Response:
    return JSONResponse({"Locked": repo_at(request, request.path_params["uuid"]).locked})


async def create_repo(request: Request) -> Response:
    _need_writes(request)
    body = await dvid_json_body(request)
    alias, description = body.get("alias"), body.get("description", "")
    if not isinstance(alias, str) or not alias:
        raise ApiError("POST on repos endpoint requires valid 'alias': diced names repos by it")
    if not isinstance(description, str):
        raise ApiError("POST on repos endpoint requires valid 'description'")
    if "root" in body:
        raise ApiError("diced chooses the root UUID itself: leave out 'root'")

    def create() -> str:
        return store_of(request).create_repo(alias, description).uuid

    return JSONResponse({"root": await run_in_threadpool(create)})


async def commit_node(request: Request) -> Response:
    _need_writes(request)
    body = await dvid_json_body(request)
    note, log = body.get("note", ""), body.get("log", [])
    if not isinstance(note, str) or not isinstance(log, list) \
            or not all(isinstance(line, str) for line in log):
        raise ApiError("commit takes {\"note\": string, \"log\": [strings]}")
    message = "\n".join([note, *log]) if log else note

    def commit() -> str:
        repo = repo_at(request, request.path_params["uuid"])
        repo.lock_node(message)
        return repo.uuid

    return JSONResponse({"committed": await run_in_threadpool(commit)})


async def new_version(request: Request) -> Response:
    _need_writes(request)
    body = await dvid_json_body(request)
    note = body.get("note", "")
    if not isinstance(note, str):
        raise ApiError("newversion takes {\"note\": string}")
    if body.get("uuid"):
        raise ApiError("diced chooses version UUIDs itself: leave out 'uuid'")

    def branch() -> str:
        return repo_at(request, request.path_params["uuid"]).create_branch(note)

    return JSONResponse({"child": await run_in_threadpool(branch)})


# -- new data instances ---------------------------------------------------------------------

_NEW_TYPES = {"uint8blk": np.uint8, "uint16blk": np.uint16, "uint32blk": np.uint32,
              "uint64blk": np.uint64, "float32blk": np.float32, "labelblk": np.uint64}


def _numbers(value: Any, what: str, kind: type) -> list[Any] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        return [kind(p) for p in parts]
    except (TypeError, ValueError) as exc:
        raise ApiError(f"{what} must be numbers separated by commas, x first") from exc


async def new_instance(request: Request) -> Response:
    """``POST /api/repo/{uuid}/instance``: an unbounded 3-D array, or a keyvalue instance."""
    _need_writes(request)
    body = {k.lower(): v for k, v in (await dvid_json_body(request)).items()}
    typename, dataname = body.get("typename"), body.get("dataname")
    if not isinstance(typename, str) or not isinstance(dataname, str) or not dataname:
        raise ApiError("POST on repo endpoint requires specification of valid 'typename' "
                       "and 'dataname'")
    if typename != "keyvalue" and typename not in _NEW_TYPES:
        raise ApiError(f"diced cannot create instances of type {typename!r}: it makes "
                       f"{', '.join(sorted(_NEW_TYPES))} and keyvalue")
    blocks = _numbers(body.get("blocksize"), "BlockSize", int)
    voxel = _numbers(body.get("voxelsize") or body.get("res"), "VoxelSize", float)
    units = body.get("voxelunits")
    unit = (units.split(",")[0] if isinstance(units, str) else None) or None
    unit = unit.removesuffix("s") if unit else None

    def create() -> None:
        repo = repo_at(request, request.path_params["uuid"])
        if typename == "keyvalue":
            repo.node_record()  # instances of files exist implicitly; the node must exist
            if repo.locked:
                raise ApiError(f"New data instance cannot be created on locked node {repo.uuid}")
            return
        try:
            repo.create_array(dataname, _NEW_TYPES[typename], dims=3,
                              chunks=None if blocks is None else tuple(reversed(blocks)),
                              islabel3D=typename == "labelblk",
                              voxel_size=None if voxel is None else tuple(reversed(voxel)),
                              unit=unit if voxel is not None or unit else None)
        except InvalidInputError as exc:
            raise ApiError(str(exc)) from exc

    await run_in_threadpool(create)
    return JSONResponse({"result": f"Added {dataname} [{typename}] to node "
                                   f"{request.path_params['uuid']}"})


def dvid_routes() -> list[Route]:
    """Routes mounted before the viewer's own: /api/repos/info wins over /api/repos/{repo}."""
    node = "/api/node/{uuid}"
    repo = "/api/repo/{uuid}"
    return [
        Route("/api/server/info", server_info),
        Route("/api/server/types", server_types),
        Route("/api/server/compiled-types", compiled_types),
        Route("/api/repos/info", repos_info),
        Route("/api/repos", create_repo, methods=["POST"]),
        Route(repo, repo_head, methods=["HEAD"]),
        Route(repo + "/info", repo_info),
        Route(repo + "/branch-versions/{name}", branch_versions),
        Route(repo + "/log", repo_log),
        Route(repo + "/instance", new_instance, methods=["POST"]),
        Route(node + "/note", node_note),
        Route(node + "/log", node_log),
        Route(node + "/status", node_status),
        Route(node + "/commit", node_status, methods=["GET"]),
        Route(node + "/commit", commit_node, methods=["POST"]),
        Route(node + "/newversion", new_version, methods=["POST"]),
        Route(node + "/{instance}/info", instance_info),
    ]
