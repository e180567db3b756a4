"""The OpenAPI description of the DVID-compatible routes and the neuroglancer route.

``/openapi.json`` adds them to :mod:`diced_viewer._openapi`'s document, so the fuzz test
covers them too.
"""

from __future__ import annotations

from typing import Any

from diced_viewer._openapi import _ANY_JSON, _BINARY, _UUID, _op, _param

__all__ = ["dvid_paths"]

_ARRAY = _param("array", description="Array name")
_KV = _param("instance", description="Keyvalue instance: .files, or NAME for files NAME/KEY")
_ANY_BODY = {"required": False, "content": {"application/json": {"schema": {}}}}
_SLICE = [_UUID, _ARRAY,
          _param("dims", description="Axes, x first: 0_1_2 (a subvolume) or 0_1, 0_2, 1_2, "
                 "xy, xz, yz (a slice)"),
          _param("size", description="Size along each axis of dims, x first"),
          _param("offset", description="Offset of every axis, x first")]
_FORMAT = _param("format", description="nD, png, jpg or jpg:QUALITY")
_IMAGE = {"image/png": {"schema": {"type": "string", "format": "binary"}},
          "image/jpeg": {"schema": {"type": "string", "format": "binary"}}, **_BINARY}


def dvid_paths(writable: bool) -> dict[str, Any]:
    """Paths of the DVID routes (docs/viewer.md, "DVID compatibility"); writes if allowed."""
    node, repo = "/api/node/{uuid}", "/api/repo/{uuid}"
    kv = node + "/{instance}"
    paths: dict[str, Any] = {
        "/api/server/info": {"get": _op("DVID: server properties", [], _ANY_JSON)},
        "/api/server/types": {"get": _op("DVID: types of stored instances", [], _ANY_JSON)},
        "/api/server/compiled-types": {"get": _op("DVID: types diced serves", [], _ANY_JSON)},
        "/api/repos/info": {"get": _op("DVID: every repo by root UUID", [], _ANY_JSON)},
        repo + "/info": {"get": _op("DVID: the repo of a version", [_UUID], _ANY_JSON)},
        repo + "/branch-versions/{name}": {"get": _op(
            "DVID: versions of a branch, leaf first", [_UUID, _param("name")], _ANY_JSON)},
        repo + "/log": {"get": _op("DVID: repo log (empty)", [_UUID], _ANY_JSON)},
        node + "/note": {"get": _op("DVID: the version's note", [_UUID], _ANY_JSON)},
        node + "/log": {"get": _op("DVID: the version's log", [_UUID], _ANY_JSON)},
        node + "/status": {"get": _op("DVID: whether the version is locked", [_UUID],
                                      _ANY_JSON)},
        node + "/{array}/raw/{dims}/{size}/{offset}/{format}": {"get": _op(
            "DVID: a subvolume (nD) or a slice (png, jpg, nD)", [*_SLICE, _FORMAT], _IMAGE)},
        node + "/{array}/isotropic/{dims}/{size}/{offset}": {"get": _op(
            "DVID: a slice resampled to square pixels (PNG)", _SLICE, _IMAGE)},
        node + "/{array}/label/{coord}": {"get": _op(
            "DVID: the label at x_y_z", [_UUID, _ARRAY, _param("coord")], _ANY_JSON)},
        node + "/{array}/labels": {"get": _op(
            "DVID: labels at [[x, y, z], ...] (JSON body)", [_UUID, _ARRAY], _ANY_JSON,
            body=_ANY_BODY)},
        kv + "/keys": {"get": _op("DVID keyvalue: keys", [_UUID, _KV], _ANY_JSON)},
        kv + "/keyrange/{key1}/{key2}": {"get": _op(
            "DVID keyvalue: keys in a range", [_UUID, _KV, _param("key1"), _param("key2")],
            _ANY_JSON)},
        kv + "/keyrangevalues/{key1}/{key2}": {"get": _op(
            "DVID keyvalue: values in a range (protobuf, ?json=true, ?tar=true)",
            [_UUID, _KV, _param("key1"), _param("key2"), _param("json", "query")], _BINARY)},
        kv + "/key/{key}": {"get": _op("DVID keyvalue: one value",
                                       [_UUID, _KV, _param("key")], _BINARY)},
        "/neuroglancer/{repo}/{version}": {"get": _op(
            "Redirect to a local neuroglancer of the version (diced serve --neuroglancer)",
            [_param("repo"), _param("version"), _param("compare", "query"),
             _param("array", "query"), _param("layout", "query")], {}, ok="303")},
    }
    if writable:
        body = {"required": False, "content": {"application/json": {"schema": {
            "type": "object"}}}}
        paths["/api/repos"] = {"post": _op("DVID: create a repo {alias, description}", [],
                                           _ANY_JSON, body=body)}
        paths[repo + "/instance"] = {"post": _op(
            "DVID: create an instance {typename, dataname}", [_UUID], _ANY_JSON, body=body)}
        paths[node + "/commit"] = {"post": _op("DVID: lock the version {note, log}", [_UUID],
                                               _ANY_JSON, body=body)}
        paths[node + "/newversion"] = {"post": _op("DVID: a child continuing the branch",
                                                   [_UUID], _ANY_JSON, body=body)}
        paths[kv + "/key/{key}"]["post"] = _op(
            "DVID keyvalue: store a value", [_UUID, _KV, _param("key")], {},
            body={"required": True, "content": _BINARY})
        paths[kv + "/key/{key}"]["delete"] = _op("DVID keyvalue: delete a value",
                                                 [_UUID, _KV, _param("key")], {})
        paths[kv + "/keyvalues"] = {"post": _op(
            "DVID keyvalue: store protobuf KeyValues", [_UUID, _KV], {},
            body={"required": True, "content": _BINARY})}
    return paths
