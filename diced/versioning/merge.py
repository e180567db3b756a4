"""Three-way merges of locked versions: the plan, from digests, and the merge node.

:func:`plan_merge` compares each version with their merge base (their lowest common
ancestor) and folds the versions in the order given, for every array, chunk and file:

* changed on no version: the base's is kept;
* changed on one version only, or to the same content on several: that version's is
  taken *by digest* (its blob is shared; nothing is decoded or re-encoded);
* a chunk changed differently on several versions becomes a :class:`PendingChunk`: the
  layer above decodes it and merges it voxel by voxel (:mod:`diced.voxels`), since this
  layer knows digests, not codecs;
* an array or a file changed incompatibly (a file changed differently; an array deleted
  on one version and changed on another, created on several with different metadata, or
  whose metadata changed differently) is a :class:`~diced.errors.MergeConflict`, resolved
  when asked for by the first (``"ours"``) or last (``"theirs"``) version that changed it.

:func:`write_merge` then writes the result as a new open node whose parents are all the
versions. Its base is the first version's manifest (as for any open node), so the result
is written as that node's array entries, chunk pointers (digests of existing blobs) and
file pointers relative to the first version — exactly what locking folds into trees —
and all of it before the node is claimed (see
:meth:`~diced.versioning.graph.VersionGraph.create_merge`): a crash leaves no node or a
complete one, and the versions merged are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from diced.errors import MergeConflict
from diced.versioning import keys
from diced.versioning.diff import ArrayContent, Fetch, Indexes, NodeContent, array_changes
from diced.versioning.graph import VersionGraph
from diced.versioning.node import ArrayInfo, NodeView
from diced.versioning.records import ArrayEntry, NodeRecord

__all__ = ["MergePlan", "MergedArray", "PendingChunk", "Resolved", "plan_merge",
           "write_merge"]

Coords = tuple[int, ...]
#: Which version wins an array or file conflict: the first, the last, or none (reported).
Prefer = Literal["ours", "theirs"] | None
#: Final digests of pending chunks, by (array name, coordinates).
Resolved = Mapping[tuple[str, Coords], bytes | None]
Runner = Callable[[Callable[[Any], object], Iterable[Any]], None]


@dataclass(frozen=True)
class PendingChunk:
    """A chunk changed on several versions to different contents: merge it voxel by voxel.

    ``base`` is its digest in the merge base (or ``None``: fill value), ``sides`` its
    digest in each version that contributes to the merged array, in the order given.
    """

    array: str
    coords: Coords
    base: bytes | None
    sides: tuple[bytes | None, ...]


@dataclass
class MergedArray:
    """One array of the merge result: identity and metadata, plus its chunks.

    The chunks are ``lineage`` (a locked tree the array continues; ``None``: empty) with
    ``changes`` applied (coordinates → digest, ``None``: fill value), plus the final
    digests of ``pending`` chunks once they are merged.
    """

    name: str
    id: str
    zarr: Mapping[str, Any]
    lineage: ArrayContent | None
    changes: dict[Coords, bytes | None] = field(default_factory=dict)
    pending: list[PendingChunk] = field(default_factory=list)

    def content(self, resolved: Resolved) -> ArrayContent:
        """The merged array as a tree plus an overlay."""
        overlay = dict(self.changes)
        overlay.update({p.coords: resolved[(self.name, p.coords)] for p in self.pending})
        lineage = self.lineage
        return ArrayContent(self.id, self.zarr, lineage.root if lineage else None,
                            lineage.height if lineage else 1, overlay)


@dataclass
class MergePlan:
    """The merge of ``versions`` (locked records, in the order given) against ``base``."""

    versions: tuple[NodeRecord, ...]
    base: NodeRecord
    contents: tuple[NodeContent, ...]
    arrays: dict[str, MergedArray]
    files: dict[str, bytes]
    conflicts: list[MergeConflict]

    @property
    def pending(self) -> list[PendingChunk]:
        """Every chunk that needs a voxel merge, array by array."""
        return [p for array in self.arrays.values() for p in array.pending]


def _short(record: NodeRecord) -> str:
    return record.uuid[:12]


def _unchanged(side: ArrayContent | None, base: ArrayContent | None) -> bool:
    if side is None or base is None:
        return side is base
    return (side.id == base.id and dict(side.zarr) == dict(base.zarr) and side.root == base.root
            and side.height == base.height and not side.overlay)


def _grid(zarr: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The storage grid of an array's zarr metadata, if it has a regular chunk grid."""
    try:
        unit = zarr["chunk_grid"]["configuration"]["chunk_shape"]
        return tuple(math.ceil(n / c) for n, c in zip(zarr["shape"], unit, strict=True))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


class _Planner:
    def __init__(self, indexes: Indexes, base: NodeRecord, base_content: NodeContent,
                 versions: Sequence[NodeRecord], contents: Sequence[NodeContent],
                 prefer: Prefer, fetch: Fetch) -> None:
        self.indexes = indexes
        self.fetch = fetch
        self.base = base_content
        self.records = list(versions)
        self.contents = list(contents)
        self.prefer = prefer
        self.conflicts: list[MergeConflict] = []

    def conflict(self, kind: Literal["array", "file"], name: str, detail: str) -> bool:
        """Record a conflict unless a side wins; True when the later side wins."""
        if self.prefer is None:
            self.conflicts.append(MergeConflict(kind, name, detail=detail))
        return self.prefer == "theirs"

    def array(self, name: str) -> MergedArray | None:
        base = self.base.arrays.get(name)
        acc, meta = base, (base.zarr if base is not None else None)
        contributors: list[int] = []
        for i, side in enumerate(c.arrays.get(name) for c in self.contents):
            if _unchanged(side, base):
                continue
            if not contributors:
                acc, meta, contributors = side, (side.zarr if side else None), [i]
                continue
            if acc is None and side is None:
                continue  # deleted on both
            base_id = base.id if base is not None else None
            who = f"{_short(self.records[contributors[-1]])} and {_short(self.records[i])}"
            if acc is not None and side is not None and (
                    acc.id == side.id or (base_id not in (acc.id, side.id)
                                          and dict(acc.zarr) == dict(side.zarr))):
                contributors.append(i)
                base_meta = dict(base.zarr) if base is not None and base.id == acc.id else None
                assert meta is not None
                if dict(side.zarr) in (dict(meta), base_meta):
                    continue  # the metadata so far stands
                if dict(meta) == base_meta or self.conflict(
                        "array", name, f"its metadata changed differently on {who}"):
                    meta = side.zarr
                continue
            if acc is None or side is None:
                detail = f"deleted on one of {who} and changed on the other"
            elif base_id in (acc.id, side.id):
                detail = f"deleted and created again on one of {who} and changed on the other"
            else:
                detail = f"created on {who} with different metadata"
            if self.conflict("array", name, detail):
                acc, meta, contributors = side, (side.zarr if side else None), [i]
        if acc is None or meta is None:
            return None
        lineage = base if base is not None and base.id == acc.id else None
        if len(contributors) < 2:  # the base's array, or one version's: taken whole
            return MergedArray(name, acc.id, meta, acc)
        sides = [self.contents[i].arrays[name] for i in contributors]
        return self.chunks(MergedArray(name, acc.id, meta, lineage), sides)

    def chunks(self, merged: MergedArray, sides: list[ArrayContent]) -> MergedArray:
        """Fold the chunk changes of ``sides`` over ``merged.lineage``."""
        deltas = [array_changes(self.indexes, merged.lineage, side, self.fetch)
                  for side in sides]
        grid = _grid(merged.zarr)
        for coords in sorted(set().union(*deltas)):
            base = next(d[coords][0] for d in deltas if coords in d)
            digests = tuple(d[coords][1] if coords in d else base for d in deltas)
            changed = list(dict.fromkeys(d for d in digests if d != base))
            if grid is not None and any(c >= g for c, g in zip(coords, grid, strict=True)):
                merged.changes[coords] = None  # outside the merged shape: dropped
            elif len(changed) == 1:
                merged.changes[coords] = changed[0]
            else:
                merged.pending.append(PendingChunk(merged.name, coords, base, digests))
        return merged

    def file(self, name: str) -> bytes | None:
        base = self.base.files.get(name)
        acc, by = base, -1
        for i, side in enumerate(c.files.get(name) for c in self.contents):
            if side in (base, acc):
                continue
            if acc == base:
                acc, by = side, i
                continue
            who = f"{_short(self.records[by])} and {_short(self.records[i])}"
            detail = (f"deleted on one of {who} and changed on the other"
                      if acc is None or side is None else f"changed differently on {who}")
            if self.conflict("file", name, detail):
                acc, by = side, i
        return acc


def plan_merge(indexes: Indexes, base: NodeRecord, base_content: NodeContent,
               versions: Sequence[NodeRecord], contents: Sequence[NodeContent],
               prefer: Prefer, fetch: Fetch = map) -> MergePlan:
    """Plan the merge of ``versions`` (with their ``contents``) against ``base``.

    Reads only index pages along changed paths (no chunk data; ``fetch``: see
    :func:`~diced.versioning.diff.array_changes`). ``prefer`` resolves array and file
    conflicts (``None``: they are listed in :attr:`MergePlan.conflicts`).
    """
    planner = _Planner(indexes, base, base_content, versions, contents, prefer, fetch)
    arrays = {}
    names = set(base_content.arrays).union(*(c.arrays for c in contents))
    for name in sorted(names):
        merged = planner.array(name)
        if merged is not None:
            arrays[name] = merged
    files = {}
    for name in sorted(set(base_content.files).union(*(c.files for c in contents))):
        digest = planner.file(name)
        if digest is not None:
            files[name] = digest
    return MergePlan(tuple(versions), base, tuple(contents), arrays, files, planner.conflicts)


def write_merge(graph: VersionGraph, view_of: Callable[[NodeRecord], NodeView],
                plan: MergePlan, resolved: Resolved, note: str, branch: str | None,
                run: Runner, fetch: Fetch = map) -> NodeRecord:
    """Create the merge node of ``plan`` (``resolved``: final digests of pending chunks).

    ``view_of(record)`` opens a node view; ``run(work, items)`` runs ``work`` on every
    item (on a thread pool); ``fetch`` reads index pages (see ``array_changes``).
    Writes, relative to the first version: an array entry per array created, deleted,
    replaced or with new metadata; a chunk pointer per chunk whose content differs; a
    file pointer per file that differs. Every pointer names a blob that exists already.
    """
    first = plan.contents[0]

    def fill(record: NodeRecord) -> None:
        view = view_of(record)
        backend, repo = graph.backend, graph.repo
        pointers: list[tuple[ArrayInfo, Coords, bytes]] = []
        for name in sorted(plan.arrays.keys() | first.arrays.keys()):
            merged, old = plan.arrays.get(name), first.arrays.get(name)
            entry_key = keys.array_entry(repo, record.uuid, name)
            if merged is None:
                assert old is not None
                backend.put_if_absent(entry_key, ArrayEntry(old.id, deleted=True).to_bytes())
                continue
            same = old is not None and old.id == merged.id
            if not same or dict(old.zarr) != dict(merged.zarr):  # type: ignore[union-attr]
                backend.put_if_absent(entry_key,
                                      ArrayEntry(merged.id, dict(merged.zarr)).to_bytes())
            info = ArrayInfo(name, merged.id, merged.zarr, None)
            changes = array_changes(view.index, old if same else None,
                                    merged.content(resolved), fetch)
            pointers.extend((info, c, d or b"") for c, (_, d) in sorted(changes.items()))
        run(lambda p: view.publish_pointer(*p), pointers)
        for name in sorted(plan.files.keys() | first.files.keys()):
            digest = plan.files.get(name)
            if digest != first.files.get(name):
                backend.put(keys.file_pointer(repo, record.uuid, name), digest or b"")

    return graph.create_merge(plan.versions, note, branch, fill)
