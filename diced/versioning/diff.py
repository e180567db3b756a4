"""What differs between two versions — arrays, chunks and files — from digests alone.

Two versions of an array share every index page whose digest is equal (pages are
content-addressed and copy-on-write), so their chunk trees are compared by walking both
together from the roots and skipping every pair of subtrees with equal digests: the cost
is the changed chunks × the tree height, never the array's size or the history's length.
An open version is its parent's tree plus its own pointers; each pointer adds one
lookup. No chunk data is read here: voxel-level detail is computed above this layer (see
:mod:`diced.voxels`), through :attr:`VersionDiff.voxel_loader`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from diced.errors import InvalidInputError
from diced.versioning.chunkindex import ChunkIndex, Columns
from diced.versioning.digest import DIGEST_SIZE
from diced.versioning.node import ZARR_OBJECT_PREFIX, NodeView

__all__ = ["ArrayContent", "ArrayDiff", "ChunkChanges", "Fetch", "NodeContent",
           "VersionDiff", "VoxelChange", "array_changes", "diff_contents", "node_content"]

Coords = tuple[int, ...]
#: Chunk coordinates → (digest in the first version, digest in the second); ``None``: the
#: chunk holds only the fill value there. Only chunks whose digests differ are listed.
ChunkChanges = dict[Coords, tuple[bytes | None, bytes | None]]
Indexes = Callable[[int], ChunkIndex]
#: Reads pages: ``fetch(read, digests)`` returns ``read(d)`` for each digest, in order.
Fetch = Callable[[Callable[[bytes], Columns], list[bytes]], Iterable[Columns]]
_Ref = tuple[bytes, int]  # a page digest and the level it sits at
_EMPTY: Columns = (np.zeros(0, "<u8"), np.zeros(0, f"V{DIGEST_SIZE}"))


@dataclass(frozen=True)
class ArrayContent:
    """The chunks of one array at one version: a locked index tree plus an overlay.

    ``root``/``height`` name the tree (``root=None``: empty); ``overlay`` holds an open
    node's own pointers (coordinates → digest, ``None`` for the fill value), which win
    over the tree. A locked version has no overlay.
    """

    id: str
    zarr: Mapping[str, Any]
    root: str | None
    height: int
    overlay: Mapping[Coords, bytes | None] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return len(self.zarr["shape"])


@dataclass(frozen=True)
class NodeContent:
    """Everything one version holds: its arrays and files (zarr objects included)."""

    uuid: str
    arrays: Mapping[str, ArrayContent]
    files: Mapping[str, bytes]


def node_content(view: NodeView, arrays: Callable[[str], bool] | None = None) -> NodeContent:
    """The content of ``view``'s node now: its manifest, plus its pointers if it is open
    (``arrays(name)`` picks the arrays to include; default: all).

    Cost: nothing beyond the manifest for a locked node; an open node lists its array
    entries, chunk pointers (of the arrays included) and file pointers.
    """
    found = {}
    for name, info in view.arrays().items():
        if arrays is not None and not arrays(name):
            continue
        root, height = (info.base.root, info.base.height) if info.base else (None, 1)
        overlay = {} if view.locked else view.pointers(info)
        found[name] = ArrayContent(info.id, info.zarr, root, height, overlay)
    return NodeContent(view.uuid, found, view.files(include_hidden=True))


# -- chunk trees --------------------------------------------------------------------------


def _entries(pages: Mapping[bytes, Columns], ref: _Ref | None, level: int
             ) -> tuple[Columns, int]:
    """The page ``ref`` seen at ``level``: its columns and the level of its children.

    A tree shorter than the other is seen as if its root sat in slot 0 of pages above it
    (that is how :meth:`ChunkIndex.update` grows a tree), so trees of different heights
    line up; such a virtual page's one child keeps its own level.
    """
    if ref is None:
        return _EMPTY, level - 1
    digest, at = ref
    if at < level:
        return (np.zeros(1, "<u8"), np.frombuffer(digest, dtype=f"V{DIGEST_SIZE}")), at
    return pages[digest], level - 1


def _pairs(a: Columns, b: Columns) -> list[tuple[int, bytes | None, bytes | None]]:
    """``(slot, digest in a, digest in b)`` for every slot whose entries differ (vectorised:
    a page holds up to 512 entries, and only a few differ)."""
    (sa, da), (sb, db) = a, b
    if len(sa) == len(sb) and np.array_equal(sa, sb):
        differ = np.flatnonzero(da != db)
        return [(int(sa[i]), da[i].tobytes(), db[i].tobytes()) for i in differ]
    _, ia, ib = np.intersect1d(sa, sb, assume_unique=True, return_indices=True)
    changed = ia[da[ia] != db[ib]], ib[da[ia] != db[ib]]
    out: list[tuple[int, bytes | None, bytes | None]] = [
        (int(sa[i]), da[i].tobytes(), db[j].tobytes()) for i, j in zip(*changed, strict=True)]
    only_a = np.setdiff1d(np.arange(len(sa)), ia, assume_unique=True)
    only_b = np.setdiff1d(np.arange(len(sb)), ib, assume_unique=True)
    out += [(int(sa[i]), da[i].tobytes(), None) for i in only_a]
    out += [(int(sb[j]), None, db[j].tobytes()) for j in only_b]
    return sorted(out, key=lambda entry: entry[0])


def _walk(index: ChunkIndex, a: _Ref | None, b: _Ref | None, top: int, fetch: Fetch,
          out: ChunkChanges) -> None:
    """Walk both trees level by level, reading each level's pages together (``fetch``
    runs the reads concurrently: a remote store then costs a round trip per level, not
    per page), and descending only into slots whose digests differ."""
    frontier = [(a, b, (0,) * index.ndim)]
    for level in range(top, -1, -1):
        frontier = [f for f in frontier if f[0] != f[1]]  # equal digests: equal subtrees
        wanted = sorted({ref[0] for f in frontier for ref in f[:2]
                         if ref is not None and ref[1] == level})
        pages = dict(zip(wanted, fetch(index.page_columns, wanted), strict=True))
        following = []
        for ra, rb, base in frontier:
            (pa, below_a), (pb, below_b) = _entries(pages, ra, level), _entries(pages, rb, level)
            for slot, ca, cb in _pairs(pa, pb):
                coords = index.slot_coords(base, slot, level)
                if level == 0:
                    out[coords] = (ca, cb)
                else:
                    following.append((None if ca is None else (ca, below_a),
                                      None if cb is None else (cb, below_b), coords))
        frontier = following


def _tree_changes(index: ChunkIndex, a: ArrayContent | None, b: ArrayContent | None,
                  fetch: Fetch) -> ChunkChanges:
    refs = [None if x is None or x.root is None else (bytes.fromhex(x.root), x.height - 1)
            for x in (a, b)]
    out: ChunkChanges = {}
    top = max((r[1] for r in refs if r is not None), default=-1)
    if top >= 0:
        _walk(index, refs[0], refs[1], top, fetch, out)
    return out


def array_changes(indexes: Indexes, a: ArrayContent | None, b: ArrayContent | None,
                  fetch: Fetch = map) -> ChunkChanges:
    """The chunks whose content differs between ``a`` and ``b`` (either may be absent).

    Both trees are walked together, skipping equal subtrees; then each overlay pointer
    is compared with the other side at its coordinates (one tree lookup each).
    ``fetch(read, digests)`` reads a level's pages (pass a thread pool's ``map`` to read
    them concurrently).
    """
    if a is not None and b is not None and a.ndim != b.ndim:
        return {**array_changes(indexes, a, None, fetch),
                **array_changes(indexes, None, b, fetch)}
    present = a if a is not None else b
    if present is None:
        return {}
    index = indexes(present.ndim)
    out = _tree_changes(index, a, b, fetch)
    overlays = set(a.overlay if a else ()) | set(b.overlay if b else ())
    for coords in overlays:
        if coords in out:
            da, db = out[coords]
        else:  # the trees agree here
            tree = a if a is not None and a.root is not None else b
            da = db = (None if tree is None
                       else index.lookup(tree.root, tree.height, coords))
        if a is not None and coords in a.overlay:
            da = a.overlay[coords]
        if b is not None and coords in b.overlay:
            db = b.overlay[coords]
        out[coords] = (da, db)
    return {c: d for c, d in out.items() if d[0] != d[1]}


# -- the result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VoxelChange:
    """How one changed chunk differs voxel by voxel: the number of differing voxels and
    their bounding box (one half-open ``(start, stop)`` per axis, in array voxels)."""

    voxels: int
    box: tuple[tuple[int, int], ...] | None


@dataclass(frozen=True)
class ArrayDiff:
    """How one array differs between two versions.

    ``status``: ``"created"`` (only in the second version), ``"deleted"`` (only in the
    first), ``"replaced"`` (deleted and created again under the same name in between:
    a different array identity) or ``"modified"``. ``metadata_changed``: its zarr
    metadata (shape, attributes...) differs. ``added`` / ``removed`` / ``modified``:
    storage-grid coordinates of chunks stored only in the second version, only in the
    first, or in both with different content, sorted.
    """

    name: str
    status: Literal["created", "deleted", "replaced", "modified"]
    metadata_changed: bool
    added: tuple[Coords, ...]
    removed: tuple[Coords, ...]
    modified: tuple[Coords, ...]

    @property
    def chunks(self) -> tuple[Coords, ...]:
        """Every chunk that differs (added, removed or modified), sorted."""
        return tuple(sorted(self.added + self.removed + self.modified))


@dataclass(frozen=True)
class VersionDiff:
    """What differs between versions ``a`` and ``b`` (from ``a`` to ``b``).

    ``arrays`` holds one :class:`ArrayDiff` per array that differs, by name; files are
    listed by name. A diff of a version with itself is empty (``bool(diff)`` is False).
    """

    a: str
    b: str
    arrays: Mapping[str, ArrayDiff]
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()
    #: Computes :meth:`voxels` (set by the API that made the diff; not part of its value).
    voxel_loader: Callable[[str], Mapping[Coords, VoxelChange]] | None = field(
        default=None, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.arrays or self.files_added or self.files_removed
                    or self.files_modified)

    @property
    def is_empty(self) -> bool:
        """Whether the two versions hold the same arrays, chunks and files."""
        return not self

    def voxels(self, array: str) -> dict[Coords, VoxelChange]:
        """Per changed chunk of ``array``: how many voxels differ, and their bounding box.

        Decodes both versions of each changed chunk (cost: the changed chunks of this
        array, not its size). A voxel that exists in only one version (an array created,
        deleted, or resized) counts when its value differs from the fill value.

        Raises
        ------
        InvalidInputError
            ``array`` is not among this diff's arrays.
        """
        if array not in self.arrays:
            raise InvalidInputError(
                f"array {array!r} does not differ between {self.a} and {self.b}; the "
                f"arrays that do: {', '.join(sorted(self.arrays)) or 'none'}")
        if self.voxel_loader is None:
            raise InvalidInputError("this diff was made without access to the store; make "
                                    "it with repo.diff(a, b)")
        return dict(self.voxel_loader(array))


def _visible(files: Mapping[str, bytes]) -> dict[str, bytes]:
    return {n: d for n, d in files.items() if not n.startswith(ZARR_OBJECT_PREFIX)}


def diff_contents(indexes: Indexes, a: NodeContent, b: NodeContent,
                  arrays: Callable[[str], bool] | None = None, fetch: Fetch = map
                  ) -> VersionDiff:
    """The difference from ``a`` to ``b``; ``arrays(name)`` restricts the arrays compared
    (``fetch``: see :func:`array_changes`)."""
    found = {}
    for name in sorted(a.arrays.keys() | b.arrays.keys()):
        if arrays is not None and not arrays(name):
            continue
        old, new = a.arrays.get(name), b.arrays.get(name)
        changes = array_changes(indexes, old, new, fetch)
        if old is None:
            status: Literal["created", "deleted", "replaced", "modified"] = "created"
        elif new is None:
            status = "deleted"
        elif old.id != new.id:
            status = "replaced"
        else:
            status = "modified"
        meta = old is not None and new is not None and dict(old.zarr) != dict(new.zarr)
        if status == "modified" and not meta and not changes:
            continue
        found[name] = ArrayDiff(
            name, status, meta,
            added=tuple(sorted(c for c, (x, y) in changes.items() if x is None)),
            removed=tuple(sorted(c for c, (x, y) in changes.items() if y is None)),
            modified=tuple(sorted(c for c, (x, y) in changes.items()
                                  if x is not None and y is not None)))
    fa, fb = _visible(a.files), _visible(b.files)
    return VersionDiff(
        a.uuid, b.uuid, found,
        files_added=tuple(sorted(fb.keys() - fa.keys())),
        files_removed=tuple(sorted(fa.keys() - fb.keys())),
        files_modified=tuple(sorted(n for n in fa.keys() & fb.keys() if fa[n] != fb[n])))
