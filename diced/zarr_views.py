"""The zarr objects of a version that are computed from it rather than stored.

:class:`~diced.zarr_store.NodeStore` serves these next to what is stored, so each is
rebuilt from the node on every read and can never be stale:

* ``zarr.json``: the root group, with the version's zarr metadata consolidated
  (``consolidated_metadata``, zarr v3 "inline" kind) so that zarr and xarray list a
  version's arrays without a listing request (which plain HTTP cannot answer). Attributes
  a zarr tool stored on the root group are kept;
* ``<array>/zarr.json``: the stored document, with default ``dimension_names`` for arrays
  stored without them (:func:`array_document`);
* ``.ome/<array>/``: an OME-NGFF 0.5 image group per array (:func:`diced.zarr_ome.multiscale_group`)
  whose dataset ``0`` is the array itself and ``1, 2, ...`` its pyramid levels: the keys
  ``.ome/<array>/<i>/...`` are the keys of the level's array. Array names never start with
  ``.``, so the prefix cannot collide with an array. Arrays whose axes OME-NGFF does not
  allow (1-D, more than 5-D) and pyramid levels have no group of their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from diced import zarr_ome as ome
from diced.versioning.node import ArrayInfo

__all__ = ["OME_PREFIX", "array_document", "ome_level_key", "ome_names", "ome_object",
           "root_document"]

#: Key prefix of the OME-NGFF view: ``.ome/<array>/zarr.json`` is array ``<array>``'s group.
OME_PREFIX = ".ome"
_GROUP: dict[str, Any] = {"zarr_format": 3, "node_type": "group", "attributes": {}}

FindArray = Callable[[str], ArrayInfo | None]


def array_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Array document ``doc`` as served: with ``dimension_names`` (defaults if unset)."""
    out = dict(doc)
    out["dimension_names"] = list(ome.dimension_names_of(doc))
    return out


def _levels(info: ArrayInfo, find: FindArray) -> list[tuple[ome.PyramidLevel, dict[str, Any]]]:
    out = []
    for level in ome.pyramid_levels(info.zarr):
        found = find(level.array)
        if found is None or len(found.zarr["shape"]) != info.ndim:
            break  # a level missing in this version ends the pyramid there
        out.append((level, array_document(found.zarr)))
    return out


def _ome_group(info: ArrayInfo, find: FindArray) -> dict[str, Any] | None:
    if ome.is_pyramid_level(info.zarr):
        return None
    return ome.multiscale_group(info.name, array_document(info.zarr), _levels(info, find))


def ome_names(arrays: Mapping[str, ArrayInfo]) -> list[str]:
    """Names of the arrays that have an OME-NGFF group, sorted."""
    return [n for n, info in sorted(arrays.items()) if _ome_group(info, arrays.get) is not None]


def _without_consolidated(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "consolidated_metadata"}


def _ome_tree(arrays: Mapping[str, ArrayInfo]) -> dict[str, Any]:
    """Documents of the ``.ome`` subtree, by path relative to it."""
    tree: dict[str, Any] = {}
    for name, info in sorted(arrays.items()):
        group = _ome_group(info, arrays.get)
        if group is None:
            continue
        tree[name] = _without_consolidated(group)
        for path, member in group["consolidated_metadata"]["metadata"].items():
            tree[f"{name}/{path}"] = member
    return tree


def _consolidated(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "inline", "must_understand": False, "metadata": dict(metadata)}


def root_document(stored: bytes | None, arrays: Mapping[str, ArrayInfo],
                  groups: Mapping[str, bytes]) -> bytes:
    """The root ``zarr.json`` of a version.

    ``stored`` is the root document a zarr tool wrote (``None``: none), ``arrays`` the
    version's arrays and ``groups`` the other ``zarr.json`` objects stored in it, by path.
    A stored root that is not a JSON group document is returned as it is.
    """
    doc: dict[str, Any] = dict(_GROUP)
    if stored is not None:
        try:
            parsed = json.loads(stored)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return stored
        if not isinstance(parsed, dict) or parsed.get("node_type") != "group":
            return stored
        doc = _without_consolidated(parsed)
    metadata: dict[str, Any] = {}
    for path, data in sorted(groups.items()):
        try:
            member = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(member, dict) and member.get("node_type") in ("group", "array"):
            metadata[path] = _without_consolidated(member)
    for name, info in arrays.items():
        metadata[name] = array_document(info.zarr)
    tree = _ome_tree(arrays)
    if tree:
        metadata[OME_PREFIX] = dict(_GROUP)
        metadata.update({f"{OME_PREFIX}/{path}": member for path, member in tree.items()})
    doc["consolidated_metadata"] = _consolidated(metadata)
    return json.dumps(doc).encode()


def ome_object(key: str, arrays: Mapping[str, ArrayInfo]) -> bytes | None:
    """The ``.ome/zarr.json`` or ``.ome/<array>/zarr.json`` document ``key`` names, if any."""
    if key == f"{OME_PREFIX}/zarr.json":
        tree = _ome_tree(arrays)
        return json.dumps({**_GROUP, "consolidated_metadata": _consolidated(tree)}).encode()
    name, sep, rest = key[len(OME_PREFIX) + 1:].partition("/")
    info = arrays.get(name)
    if not sep or rest != "zarr.json" or info is None:
        return None
    group = _ome_group(info, arrays.get)
    return None if group is None else json.dumps(group).encode()


def ome_level_key(key: str, find: FindArray) -> str | None:
    """The array key behind ``.ome/<array>/<level>/<rest>``, or ``None`` if it names none.

    Level ``0`` is the array itself, level ``i`` its pyramid's ``i``-th coarser level.
    """
    parts = key.split("/", 3)
    if len(parts) != 4 or parts[0] != OME_PREFIX or not parts[2].isdigit():
        return None
    _, name, level, rest = parts
    info = find(name)
    if info is None or ome.is_pyramid_level(info.zarr) or ome.axes_of(info.zarr) is None:
        return None
    index = int(level)
    if index == 0 and level == "0":
        return f"{name}/{rest}"
    levels = _levels(info, find)
    if str(index) != level or not 1 <= index <= len(levels):
        return None
    return f"{levels[index - 1][0].array}/{rest}"
