"""The OpenAPI 3.1 description of the viewer's HTTP API (served at ``/openapi.json``).

Written by hand next to the routes (Starlette has no schema generation that knows our
binary responses); ``tests/viewer/test_openapi_fuzz.py`` fuzzes every operation described
here, so a route missing from this document is a route nobody tests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"description": "Error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_ANY_JSON: dict[str, Any] = {"application/json": {"schema": {}}}


def _param(name: str, where: str = "path", description: str = "",
           schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path",
            "description": description, "schema": schema or {"type": "string"}}


_UUID = _param("uuid", description="Version: full UUID, a unique prefix, :branch or tag:NAME")
_REPO = _param("repo", description="Repo name")
_ARRAY = _param("array", description="Array name")
_PLANE_QUERY = [
    _param("rows", "query", "numpy axis shown as rows (default ndim-2)",
           {"type": "integer", "minimum": 0, "maximum": 31}),
    _param("cols", "query", "numpy axis shown as columns (default ndim-1)",
           {"type": "integer", "minimum": 0, "maximum": 31}),
    _param("index", "query", "Comma-separated coordinate per axis (displayed axes ignored); "
           "default: the middle of each axis"),
    _param("region", "query", "Window of the displayed axes: row_start,row_stop,col_start,"
           "col_stop (default: the whole plane)"),
    _param("width", "query", "Maximum width in pixels", {"type": "integer", "minimum": 1,
                                                         "maximum": 4096}),
    _param("height", "query", "Maximum height in pixels", {"type": "integer", "minimum": 1,
                                                           "maximum": 4096}),
]


def _op(summary: str, params: list[dict[str, Any]], content: dict[str, Any],
        *, ok: str = "200", body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": {
        ok: {"description": "OK", **({"content": content} if content else {})},
        **{code: _ERROR for code in ("400", "403", "404", "409", "413", "421", "503")}}}
    if body is not None:
        op["requestBody"] = body
        op["responses"].update({code: _ERROR for code in ("401", "408", "415")})
    return op


def openapi_document(writable: bool) -> dict[str, Any]:
    """The API description; write operations are listed only when writes are allowed."""
    message_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"message": {"type": "string"},
                                         "name": {"type": ["string", "null"]}},
        "required": ["message"]}}}}
    versions = {"type": "array", "items": {"type": "string"}, "minItems": 2}
    merge_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "versions": versions, "message": {"type": "string"},
            "on_conflict": {"enum": ["fail", "ours", "theirs"]},
            "name": {"type": ["string", "null"]}},
        "required": ["versions", "message"]}}}}
    dvid_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "mergeType": {"enum": ["conflict-free", "priority"]}, "parents": versions,
            "note": {"type": "string"}},
        "required": ["mergeType", "parents"]}}}}
    raw_params = [_UUID, _ARRAY,
                  _param("dims", description="Axes, x first: 0_1_2 for a 3-D array"),
                  _param("size", description="Subvolume size, x first: sx_sy_sz"),
                  _param("offset", description="Subvolume offset, x first: ox_oy_oz")]
    raw_path = "/api/node/{uuid}/{array}/raw/{dims}/{size}/{offset}"
    paths: dict[str, Any] = {
        "/api/server": {"get": _op("Store location, write mode and diced version", [],
                                   _ANY_JSON)},
        "/api/repos": {"get": _op("List repos with description, dates and node count", [],
                                  _ANY_JSON)},
        "/api/repos/{repo}": {"get": _op("Repo info with its version DAG (nodes and edges)",
                                         [_param("repo", description="Repo name")], _ANY_JSON)},
        "/api/node/{uuid}": {"get": _op("Version node: arrays, files, README, commit log",
                                        [_UUID], _ANY_JSON)},
        "/api/node/{uuid}/arrays": {"get": _op("Arrays of a version with metadata", [_UUID],
                                               _ANY_JSON)},
        "/api/node/{uuid}/.files/keys": {"get": _op("File names of a version", [_UUID],
                                                    _ANY_JSON)},
        "/api/node/{uuid}/.files/key/{name}": {"get": _op(
            "Download a file", [_UUID, _param("name", description="File name")], _BINARY)},
        "/api/node/{uuid}/{array}/info": {"get": _op("Array metadata (DVID-style info)",
                                                     [_UUID, _ARRAY], _ANY_JSON)},
        "/api/node/{uuid}/{array}/slice.png": {"get": _op(
            "PNG of one plane, downsampled to fit width x height",
            [_UUID, _ARRAY, *_PLANE_QUERY,
             _param("lo", "query", "Window low (grey 0)", {"type": "number"}),
             _param("hi", "query", "Window high (grey 255)", {"type": "number"}),
             _param("label", "query", "Colour label ids: auto, true or false")],
            {"image/png": {"schema": {"type": "string", "format": "binary"}}})},
        "/api/node/{uuid}/{array}/slice.raw": {"get": _op(
            "One plane as little-endian values (row-major); X-Diced-* headers give shape, "
            "origin, step and dtype", [_UUID, _ARRAY, *_PLANE_QUERY], _BINARY)},
        "/api/node/{uuid}/{array}/diff": {"get": _op(
            "Chunks that differ between this version and another",
            [_UUID, _ARRAY, {**_param("other", "query", "The other version"),
                             "required": True}], _ANY_JSON)},
        raw_path: {"get": _op("DVID raw subvolume, little-endian, x fastest", raw_params,
                              _BINARY)},
        "/api/repos/{repo}/diff": {"get": _op(
            "What differs from version a to version b: per array, chunks added, removed and "
            "modified (and, with voxels=1, differing voxels per chunk); files",
            [_REPO, {**_param("a", "query", "First version (any reference)"),
                     "required": True},
             {**_param("b", "query", "Second version (any reference)"), "required": True},
             _param("array", "query", "Compare only this array (repeatable)"),
             _param("voxels", "query", "1: count differing voxels per changed chunk")],
            _ANY_JSON)},
        "/api/repos/{repo}/conflicts": {"get": _op(
            "The conflicts a merge of the versions would report (writes nothing)",
            [_REPO, {**_param("versions", "query", "Two or more versions, comma-separated"),
                     "required": True},
             _param("array", "query", "Only the conflicts of this array")], _ANY_JSON)},
        "/zarr/{repo}/{version}/{key}": {"get": _op(
            "A version as plain zarr v3 (zarr.json documents and chunk keys; Range; CORS for "
            "the origins the server allows)",
            [_param("repo", description="Repo name"),
             _param("version", description="UUID, prefix or :branch"),
             _param("key", description="zarr key, e.g. zarr.json or img/c/0/0/0")],
            {"application/json": {"schema": {}}, **_BINARY})},
    }
    paths["/zarr/{repo}/{version}/{key}"]["get"]["responses"].update({
        "206": {"description": "The requested byte range", "content": _BINARY}, "416": _ERROR})
    if writable:
        paths["/api/node/{uuid}/lock"] = {"post": _op("Lock an open version", [_UUID],
                                                      _ANY_JSON, body=message_body)}
        paths["/api/node/{uuid}/branch"] = {"post": _op(
            "Create an open child of a locked version", [_UUID], _ANY_JSON, ok="201",
            body=message_body)}
        paths["/api/repos/{repo}/merge"] = {"post": _op(
            "Merge two or more locked versions into a new open version (409 lists the "
            "conflicts)", [_REPO], _ANY_JSON, ok="201", body=merge_body)}
        paths["/api/repo/{uuid}/merge"] = {"post": _op(
            "DVID's merge: {mergeType: conflict-free | priority, parents, note} -> {child}",
            [_param("uuid", description="Any version of the repo")], _ANY_JSON,
            body=dvid_body)}
        paths[raw_path]["post"] = _op(
            "Write a DVID raw subvolume (little-endian, x fastest)", raw_params, {}, ok="204",
            body={"required": True, "content": _BINARY})
    return {
        "openapi": "3.1.0",
        "info": {"title": "diced viewer API", "version": "1",
                 "description": "Read (and with --allow-writes, change) a diced store. "
                                "Changes come only from the server's own pages and from "
                                "programs; axis conventions and the security model: see "
                                "docs/viewer.md."},
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["error", "status"],
                                             "properties": {"error": {"type": "string"},
                                                            "status": {"type": "integer"}}}}},
    }
