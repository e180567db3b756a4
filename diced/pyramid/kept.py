"""Keeping every version's pyramids right: build, update, delete, and the lock hooks.

The level arrays of a pyramid follow its level 0 (see docs/pyramids.md):

* **Commit point.** Level 0's ``attributes.diced.pyramid`` lists only complete levels.
  A build declares each level once it is fully computed, so a build that stops half-way
  (Ctrl-C, a crash) leaves a shorter, consistent pyramid plus an unlisted level array,
  which the next build replaces and ``lock_node`` deletes.
* **Shape and attributes.** When level 0 was resized, each level is resized to
  ``ceil(n / f)`` of the one below; chunks cut off are dropped, and the chunks along its
  old and new edges are marked (a pointer to their current bytes) so the next pass
  recomputes them, even if this update stops before it gets there. Level 0's other
  attributes (voxel size, unit...) are copied to the levels, voxel sizes scaled.
* **Identity.** A level 0 replaced by a new array (deleted and created again, or
  overwritten through zarr) gets fresh levels.
* **Lock.** ``lock_node`` brings every pyramid up to date while the node is open
  (:func:`before_lock`), then, once the node is sealed and no write can start, recomputes
  what changed since (:func:`after_seal`): each locked version's levels are downsamples of
  its level 0. A lock left unfinished by a crash is finished the same way.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from diced.context import StoreContext
from diced.errors import AlreadyExistsError, InvalidInputError
from diced.pyramid.chunks import Level, parent_chunks
from diced.pyramid.refresh import PyramidUpdate, Seen, refresh
from diced.pyramid.spec import (
    PyramidSpec,
    level_name,
    level_tag,
    pyramid_of,
)
from diced.versioning.node import ArrayInfo, NodeView

__all__ = ["after_seal", "before_lock", "bring_up", "check_deletable", "delete_levels",
           "remove", "unlisted_levels"]

Coords = tuple[int, ...]
#: What the last update of each pyramid in this process saw, by node view and array name
#: (with the ids of the level arrays it updated). The next update of the same view starts
#: from it, so building a pyramid and then locking the node does not compute it twice.
#: Digests name content, so an entry can be old but never wrong: whatever changed since
#: has another digest and is recomputed.
_last_seen: weakref.WeakKeyDictionary[NodeView, dict[str, tuple[tuple[str, ...], Seen]]] = \
    weakref.WeakKeyDictionary()
#: Passes after sealing before the lock goes ahead: each finds only chunks written by
#: writes that were already running when the node was sealed.
_SEALED_PASSES = 5


def _layout(zarr_meta: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for a level's chunks to be read like level 0's (not names, shape)."""
    return {k: v for k, v in zarr_meta.items()
            if k not in ("shape", "attributes", "dimension_names")}


def _declare(view: NodeView, info: ArrayInfo, spec: PyramidSpec | None) -> ArrayInfo:
    """Write level 0's pyramid declaration (``None``: it has no pyramid)."""
    attrs = dict(info.zarr.get("attributes") or {})
    diced = {k: v for k, v in dict(attrs.get("diced") or {}).items() if k != "pyramid"}
    if spec is not None:
        diced["pyramid"] = spec.to_json(info.name)
    meta = {**info.zarr, "attributes": {**attrs, "diced": diced}}
    if meta == dict(info.zarr):
        return info
    return view.set_array_metadata(info.name, meta, info.id)


def _level_metadata(info: ArrayInfo, spec: PyramidSpec, level: int,
                    shape: tuple[int, ...]) -> dict[str, Any]:
    """Level ``level``'s zarr metadata: level 0's layout and ``diced`` attributes, with its
    own shape, ``pyramid_of``, and the voxel size of its coarser voxels."""
    attrs = dict(info.zarr.get("attributes") or {})
    diced = {k: v for k, v in dict(attrs.get("diced") or {}).items() if k != "pyramid"}
    diced["pyramid_of"] = info.name
    size = diced.get("voxel_size")
    if isinstance(size, list) and len(size) == len(shape):
        diced["voxel_size"] = [v * f for v, f in zip(size, spec.scale(level), strict=True)]
    return {**info.zarr, "shape": list(shape), "attributes": {"diced": diced}}


def _occupant(view: NodeView, name: str, level: int) -> ArrayInfo | None:
    """The array at the name of level ``level`` of ``name``, if it is that level.

    Raises :class:`AlreadyExistsError` when another array took the name.
    """
    info = view.find_array(level_name(name, level))
    if info is None:
        return None
    tag = level_tag(info.name, info.zarr)
    if tag is None or tag.of != name or tag.level != level:
        raise AlreadyExistsError(
            f"array {info.name!r} is in the way of level {level} of {name!r}'s pyramid (it "
            f"is not that level); delete or rename it, then build the pyramid again"
        )
    return info


def _usable(view: NodeView, info: ArrayInfo, level: int) -> bool:
    """Whether the existing level ``level`` can be kept and updated incrementally."""
    found = _occupant(view, info.name, level)
    if found is None:
        return False
    # A level 0 new in this node (created or replaced) with a level from the parent: the
    # level was computed from another array.
    inherited_from_other = info.base is None and found.base is not None
    return _layout(found.zarr) == _layout(info.zarr) and not inherited_from_other


def _follow(view: NodeView, below: Level, level: Level, factors: tuple[int, ...],
            meta: dict[str, Any]) -> None:
    """Give ``level`` its metadata ``meta`` now that level 0's changed.

    A new shape drops the chunks cut off and marks the chunks along the old and new edges
    (a pointer to their current bytes), so the next pass recomputes them.
    """
    old, unit, shape = level.shape, level.unit, tuple(meta["shape"])
    if old != shape:
        edges = {axis: {(old[axis] - 1) // unit[axis], (shape[axis] - 1) // unit[axis]}
                 for axis in range(len(shape)) if old[axis] != shape[axis]}
        stored = level.access.stored()
        candidates = set(stored)
        for coords in below.access.stored():
            candidates.update(parent_chunks(coords, below, level, factors))
        for coords in candidates:
            inside = all(x * u < n for x, u, n in zip(coords, unit, shape, strict=True))
            if inside and any(coords[axis] in rows for axis, rows in edges.items()):
                view.publish_pointer(level.info, coords, stored.get(coords, b""))
        for coords in stored:
            if any(x * u >= n for x, u, n in zip(coords, unit, shape, strict=True)):
                level.access.write(coords, None)
    view.set_array_metadata(level.info.name, meta, level.info.id)


def delete_levels(view: NodeView, name: str, above: int = 0) -> None:
    """Delete the level arrays of ``name`` numbered above ``above`` (default: all)."""
    for found, info in view.arrays().items():
        tag = level_tag(found, info.zarr)
        if tag is not None and tag.of == name and tag.level > above:
            view.delete_array(found)


def bring_up(ctx: StoreContext, view: NodeView, name: str, target: PyramidSpec,
             progress: bool | None) -> tuple[PyramidUpdate, Seen]:
    """Make array ``name``'s pyramid ``target`` and up to date, at an open node.

    Levels that match ``target`` are updated incrementally (resized first if level 0
    was); the others are computed afresh, each declared on level 0 once complete.

    Raises
    ------
    AlreadyExistsError
        An array that is not the level holds one of the level names.
    """
    info = view.array(name)
    for k in range(1, target.levels + 1):
        _occupant(view, name, k)
    declared = pyramid_of(name, info.zarr)
    keep = 0
    if declared is not None and declared.method == target.method:
        while keep < min(declared.levels, target.levels) \
                and declared.factors[keep] == target.factors[keep] \
                and _usable(view, info, keep + 1):
            keep += 1
    if declared != target or keep < target.levels:
        # Level 0 lists only the levels kept until the others are complete again.
        info = _declare(view, info, PyramidSpec(target.factors[:keep], target.method)
                        if keep else None)
        delete_levels(view, name, target.levels)
    shapes = target.shapes(tuple(info.zarr["shape"]))
    levels = [Level(ctx, view, info)]
    resized = False
    for k in range(1, keep + 1):
        level = Level(ctx, view, view.array(level_name(name, k)))
        meta = _level_metadata(info, target, k, shapes[k])
        if dict(level.info.zarr) != meta:
            _follow(view, levels[-1], level, target.factors[k - 1], meta)
            resized = resized or level.shape != shapes[k]
            level = Level(ctx, view, view.array(level.info.name))
        levels.append(level)
    kept = PyramidSpec(target.factors[:keep], target.method)
    ids = tuple(level.info.id for level in levels)
    last = _last_seen.get(view, {}).get(name)
    if keep:
        # A resize marks edge chunks with their current bytes, which what this process
        # saw before may equal: start afresh then.
        start = None
        if last is not None and last[0][:len(ids)] == ids and not resized:
            start = last[1]
        done, seen = refresh(view, levels, kept, seen=start, progress=progress)
    else:
        done, seen = PyramidUpdate((), ()), Seen()
    computed, rewritten = list(done.computed), list(done.rewritten)
    for k in range(keep + 1, target.levels + 1):
        meta = _level_metadata(info, target, k, shapes[k])
        levels.append(Level(ctx, view, view.replace_array(level_name(name, k), meta)))
        step = PyramidSpec((target.factors[k - 1],), target.method)
        more, saw = refresh(view, levels[-2:], step, rebuild_from=1, progress=progress)
        seen.at(k - 1).update(saw.at(0))
        seen.at(k).update(saw.at(1))
        computed += more.computed
        rewritten += more.rewritten
        info = _declare(view, view.array(name), PyramidSpec(target.factors[:k], target.method))
    _last_seen.setdefault(view, {})[name] = (tuple(level.info.id for level in levels), seen)
    return PyramidUpdate(tuple(computed), tuple(rewritten)), seen


def remove(view: NodeView, name: str) -> None:
    """Remove array ``name``'s pyramid: its declaration, then its level arrays."""
    _declare(view, view.array(name), None)
    delete_levels(view, name)


def check_deletable(view: NodeView, name: str) -> None:
    """Refuse to delete a level that its array's pyramid still lists.

    Raises :class:`InvalidInputError` naming how to remove the pyramid instead.
    """
    info = view.find_array(name) if isinstance(name, str) else None
    tag = None if info is None else level_tag(name, info.zarr)
    if tag is None:
        return
    owner = view.find_array(tag.of)
    spec = None if owner is None else pyramid_of(tag.of, owner.zarr)
    if spec is not None and tag.level <= spec.levels:
        raise InvalidInputError(
            f"array {name!r} is level {tag.level} of the pyramid of {tag.of!r}; remove the "
            f"whole pyramid with get_array({tag.of!r}).delete_pyramid(), or delete "
            f"{tag.of!r} (its levels go with it)"
        )


def unlisted_levels(arrays: Mapping[str, ArrayInfo]) -> list[str]:
    """Level arrays (by their reserved names) that no pyramid lists any more."""
    out = []
    for name, info in arrays.items():
        tag = level_tag(name, info.zarr)
        if tag is None:
            continue
        owner = arrays.get(tag.of)
        spec = None if owner is None else pyramid_of(tag.of, owner.zarr)
        if spec is None or tag.level > spec.levels:
            out.append(name)
    return out


def _pyramids(arrays: Mapping[str, ArrayInfo]) -> list[tuple[ArrayInfo, PyramidSpec]]:
    found = []
    for name, info in arrays.items():
        spec = pyramid_of(name, info.zarr)
        if spec is not None:
            found.append((info, spec))
    return found


def before_lock(ctx: StoreContext, view: NodeView) -> dict[str, Seen]:
    """Bring every pyramid of an open node up to date; delete unlisted levels.

    Returns what each pyramid's update saw, for :func:`after_seal`. Does nothing at a
    node that is no longer open (a lock being finished).
    """
    if view.load_record().state != "open":
        return {}
    arrays = view.arrays()
    for name in unlisted_levels(arrays):
        view.delete_array(name)
    return {info.name: bring_up(ctx, view, info.name, spec, False)[1]
            for info, spec in _pyramids(arrays)}


def after_seal(ctx: StoreContext, view: NodeView, arrays: Mapping[str, ArrayInfo],
               seen: Mapping[str, Seen]) -> dict[str, dict[Coords, bytes | None]]:
    """At a sealed node, recompute the blocks over chunks changed since :func:`before_lock`.

    Only writes that were running when the node was sealed can have changed anything, so
    this usually reads a few listings and computes nothing. Without ``seen`` (a lock left
    unfinished by a crash, finished by another process) it is a full update pass. Levels
    cannot be created or resized any more: a pyramid is updated up to its first level
    that is missing or not the shape it should be.

    ``arrays`` are the node's arrays as the lock listed them. Returns, by array id, the
    pointers of every level (0 included) that the last pass found unchanged: the lock
    folds exactly these into the locked version.
    """
    frozen: dict[str, dict[Coords, bytes | None]] = {}
    for info, spec in _pyramids(arrays):
        levels = [Level(ctx, view, info)]
        shapes = spec.shapes(tuple(info.zarr["shape"]))
        for k in range(1, spec.levels + 1):
            found = arrays.get(level_name(info.name, k))
            if found is None or level_tag(found.name, found.zarr) is None:
                break
            level = Level(ctx, view, found)
            if level.shape != shapes[k]:
                break
            levels.append(level)
        if len(levels) < 2:
            continue
        partial = PyramidSpec(spec.factors[:len(levels) - 1], spec.method)
        last = seen.get(info.name)
        for _ in range(_SEALED_PASSES):
            done, saw = refresh(view, levels, partial, seen=last)
            last = saw
            if not any(done.computed):
                break
        assert last is not None
        for k, level in enumerate(levels):
            frozen[level.info.id] = last.pointers[k]
    return frozen
