"""Version control past lock and branch, as methods of :class:`~diced.DicedRepo`.

Tags (:meth:`~RepoVersioning.create_tag`), diffs (:meth:`~RepoVersioning.diff`), merges
(:meth:`~RepoVersioning.merge`), the whole history (:meth:`~RepoVersioning.log`,
:meth:`~RepoVersioning.history`) and time travel (:meth:`~RepoVersioning.version_at`).
The work is done by the versioning core (:mod:`diced.versioning.tags`, ``diff``,
``merge``, ``history``) on digests, and by :mod:`diced.voxels` where chunks must be
decoded; this module checks arguments and connects them. See docs/versioning.md.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from diced.chunk_access import metadata_of, storage_grid
from diced.context import StoreContext
from diced.errors import (
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    MergeConflict,
    MergeConflictError,
    NotFoundError,
)
from diced.versioning import history
from diced.versioning.chunkindex import ChunkIndex
from diced.versioning.diff import (
    NodeContent,
    VersionDiff,
    VoxelChange,
    array_changes,
    diff_contents,
    node_content,
)
from diced.versioning.graph import DEFAULT_BRANCH, VersionGraph, validate_branch_name
from diced.versioning.merge import MergePlan, PendingChunk, plan_merge, write_merge
from diced.versioning.node import NodeView
from diced.versioning.records import NodeRecord, RepoRecord, TagRecord, require_locked
from diced.versioning.tags import Tags
from diced.voxels import ChunkCoder, ConflictFunction, MergedChunk, merge_chunk, voxel_change

__all__ = ["HELD_BYTES", "OnConflict", "RepoVersioning"]

Coords = tuple[int, ...]
#: What a merge does with conflicts: fail, first version wins, last wins, or a function
#: ``(array, chunk coordinates, base, ours, theirs) -> block``.
OnConflict = Literal["fail", "ours", "theirs"] | ConflictFunction
#: Bytes of merged chunks a failing-on-conflict merge holds in memory before the check;
#: chunks beyond are merged again once the check passed.
HELD_BYTES = 256 * 2**20
_ADVICE = ("Pass on_conflict='ours' (the first version listed wins), 'theirs' (the last "
           "wins) or a function resolving voxel conflicts, or make the versions agree on a "
           "branch and merge again")


class RepoVersioning:
    """Tags, diff, merge, history and time travel of one repo (a mixin of DicedRepo)."""

    _ctx: StoreContext
    _graph: VersionGraph
    _view: NodeView
    _record: RepoRecord
    readonly: bool

    # -- helpers -----------------------------------------------------------------------------

    def _node(self, version: str | None) -> NodeRecord:
        """The record of ``version`` (any reference; ``None``: the current version)."""
        return self._graph.node(self._view.uuid if version is None
                                else self._graph.resolve(version))

    def _open(self, record: NodeRecord) -> NodeView:
        return NodeView.open(self._ctx.backend, record, self._ctx.page_cache, self._graph.node)

    def _indexes(self) -> Callable[[int], ChunkIndex]:
        made: dict[int, ChunkIndex] = {}

        def index(ndim: int) -> ChunkIndex:
            if ndim not in made:
                made[ndim] = ChunkIndex(self._ctx.backend, self._graph.repo, ndim,
                                        self._ctx.page_cache)
            return made[ndim]

        return index

    def _writable(self, action: str) -> None:
        if self.readonly:
            raise LockedError(f"repo {self._record.name!r} was opened read-only; open it with "
                              f"readonly=False to {action}")

    # -- tags ------------------------------------------------------------------------------

    def create_tag(self, name: str, version: str | None = None, message: str = "") -> TagRecord:
        """Name locked ``version`` (default: the current version) ``name``, forever.

        Afterwards ``tag:NAME`` addresses it wherever a version is accepted. Tags never
        move: creating an existing name fails (delete the tag first to reuse the name).

        Raises
        ------
        InvalidInputError
            A bad name or message, or the version is open (lock it first).
        AlreadyExistsError
            The tag exists.
        NotFoundError
            No such version.
        """
        self._writable("tag a version")
        return Tags(self._ctx.backend, self._graph.repo).create(name, self._node(version),
                                                                message)

    def list_tags(self) -> list[TagRecord]:
        """Every tag of the repo (name, uuid, message, created), sorted by name."""
        return Tags(self._ctx.backend, self._graph.repo).list()

    def delete_tag(self, name: str) -> None:
        """Delete tag ``name``; the version it named is untouched.

        Raises :class:`NotFoundError` if there is no such tag.
        """
        self._writable("delete a tag")
        Tags(self._ctx.backend, self._graph.repo).delete(name)

    # -- diff -------------------------------------------------------------------------------

    def diff(self, a: str, b: str | None = None, *,
             arrays: Iterable[str] | None = None) -> VersionDiff:
        """What differs from version ``a`` to version ``b`` (default: the current version).

        Any two versions of this repo, ancestor or not, open or locked. Per array: chunks
        added, removed and modified (storage-grid coordinates), whether it was created,
        deleted, replaced or had its metadata changed; files added, removed, modified.
        ``arrays`` restricts the comparison to those array names. The result's
        :meth:`~diced.versioning.diff.VersionDiff.voxels` adds, per changed chunk, the
        number of differing voxels and their bounding box.

        Cost: O(changed chunks × tree height) for locked versions — both chunk trees are
        walked together and every subtree with equal page digests is skipped — plus one
        lookup per chunk an open version wrote. Never the array's size, never the
        history's length.
        """
        selected = None
        if arrays is not None:
            if isinstance(arrays, str):
                arrays = [arrays]
            selected = {str(name) for name in arrays}
        views = [self._open(self._node(a)), self._open(self._node(b))]
        wanted = None if selected is None else selected.__contains__
        contents = [node_content(v, wanted) for v in views]
        indexes = self._indexes()
        result = diff_contents(indexes, contents[0], contents[1], wanted,
                               self._ctx.io_pool.map)
        return replace(result, voxel_loader=lambda name: self._voxel_changes(
            views[0], contents, indexes, name))

    def _voxel_changes(self, view: NodeView, contents: list[NodeContent],
                       indexes: Callable[[int], ChunkIndex], name: str
                       ) -> dict[Coords, VoxelChange]:
        old, new = (c.arrays.get(name) for c in contents)
        coders = [None if x is None else ChunkCoder(x.zarr) for x in (old, new)]

        def read(d: bytes | None) -> bytes | None:
            return None if d is None else view.read_blob(d)

        def one(item: tuple[Coords, tuple[bytes | None, bytes | None]]
                ) -> tuple[Coords, VoxelChange]:
            coords, (da, db) = item
            return coords, voxel_change(coders[0], read(da), coders[1], read(db), coords)

        changes = sorted(array_changes(indexes, old, new, self._ctx.io_pool.map).items())
        return dict(self._ctx.io_pool.map(one, changes))

    # -- merge ------------------------------------------------------------------------------

    def _merge_plan(self, versions: Sequence[str], prefer: Literal["ours", "theirs"] | None
                    ) -> MergePlan:
        if isinstance(versions, str) or not isinstance(versions, Sequence):
            raise InvalidInputError(f"versions must be a list of two or more versions, not "
                                    f"{versions!r:.80}")
        if len(versions) < 2:
            raise InvalidInputError(f"a merge needs two or more versions, got {len(versions)}: "
                                    f"{list(versions)!r:.80}; to continue one version, use "
                                    "create_branch")
        records = []
        for ref in versions:
            try:
                records.append(self._node(ref))
            except NotFoundError as exc:
                raise NotFoundError(f"cannot merge {ref!r:.80}: it is not a version of repo "
                                    f"{self._record.name!r} ({exc})") from None
        uuids = [r.uuid for r in records]
        if len(set(uuids)) < len(uuids):
            raise InvalidInputError(f"the versions to merge name the same node twice: "
                                    f"{list(versions)!r:.200}")
        for record in records:
            require_locked(record, "merging it")
        base = history.merge_base(self._graph, uuids)
        contents = [node_content(self._open(r)) for r in records]
        return plan_merge(self._indexes(), base, node_content(self._open(base)), records,
                          contents, prefer, self._ctx.io_pool.map)

    def _merge_chunks(self, plan: MergePlan, on_conflict: str | ConflictFunction, *,
                      encode: bool, store: bool, progress: bool | None,
                      only: set[tuple[str, Coords]] | None = None
                      ) -> list[tuple[PendingChunk, MergedChunk]]:
        """Merge the pending chunks of ``plan`` (``only``: those) on the I/O pool.

        ``encode=False`` finds conflicts only. ``store=True`` stores each new merged chunk
        at once (the result then names its digest); otherwise new chunks come back as
        bytes, up to :data:`HELD_BYTES` in all, and as "not kept" beyond that.
        """
        view = self._open(plan.versions[0])
        coders = {name: ChunkCoder(array.zarr) for name, array in plan.arrays.items()
                  if array.pending}
        pending = [p for p in plan.pending if only is None or (p.array, p.coords) in only]
        sizes = {name: int(c.dtype.itemsize) * _cells(c.unit) for name, c in coders.items()}
        held = [0]
        lock = threading.Lock()

        def one(p: PendingChunk, advance: Callable[[int], None]) -> tuple[PendingChunk,
                                                                          MergedChunk]:
            merged = merge_chunk(coders[p.array], p.array, p.coords, p.base, p.sides,
                                 view.read_blob, on_conflict, encode=encode)
            data = merged.data
            if data is not None:
                if store:
                    merged = MergedChunk(True, view.store_blob(data), conflict=merged.conflict)
                else:
                    with lock:
                        held[0] += len(data)
                        if held[0] > HELD_BYTES:
                            merged = MergedChunk(False, conflict=merged.conflict)
            advance(sizes[p.array])
            return p, merged

        label = "merging chunks" if encode else "checking for conflicts"
        with _progress(label, sum(sizes[p.array] for p in pending), progress) as advance:
            return list(self._ctx.io_pool.map(lambda p: one(p, advance), pending))

    def merge_conflicts(self, versions: Sequence[str]) -> list[MergeConflict]:
        """The conflicts :meth:`merge` of ``versions`` would report; writes nothing.

        Costs what the merge costs, less encoding and writing (changed chunks are
        decoded and compared).
        """
        plan = self._merge_plan(versions, None)
        results = self._merge_chunks(plan, "fail", encode=False, store=False, progress=False)
        return [*plan.conflicts, *(m.conflict for _, m in results if m.conflict is not None)]

    def merge(self, versions: Sequence[str], message: str, *,
              on_conflict: OnConflict = "fail", name: str | None = None,
              progress: bool | None = None) -> str:
        """Merge two or more locked ``versions`` into a new open node; return its UUID.

        The new node's parents are all the versions, in the order given; its content is
        the three-way merge of the versions against their lowest common ancestor:
        anything (chunk, file, array) changed on one version only is taken from it; a
        chunk changed on several is merged voxel by voxel — voxels changed on one side
        only are taken, voxels set to the same value are fine, voxels set to different
        values are conflicts. Merged chunks equal to a version's reuse its blob. See
        docs/versioning.md for every rule and a worked example.

        Like :meth:`create_branch`, the node continues the first version's branch (which
        must have no child on it yet) unless ``name`` starts a new branch, and the current
        version does not change. ``message`` is the node's note.

        ``on_conflict``: ``"fail"`` raises :class:`MergeConflictError` listing every
        conflict and writes nothing; ``"ours"`` / ``"theirs"``: the first / last listed
        version wins each conflict (DVID's priority order); a function
        ``(array, chunk_coords, base, ours, theirs) -> block`` gives the values of
        conflicting voxels (it sees whole chunks as numpy arrays; array and file
        conflicts cannot be resolved by it and raise). ``progress`` shows a progress bar
        (default: when stdout is a terminal).

        Raises
        ------
        InvalidInputError
            Fewer than two versions, a version named twice, an open version, or a bad
            argument.
        NotFoundError
            A version (or tag) that is not in this repo.
        MergeConflictError
            Unresolved conflicts; nothing was written.
        AlreadyExistsError
            The first version already has a child on its branch, or ``name`` is taken.
        """
        self._writable("merge")
        if not isinstance(message, str):
            raise InvalidInputError(f"the merge message must be a string, not {message!r:.80}")
        if not (callable(on_conflict) or on_conflict in ("fail", "ours", "theirs")):
            raise InvalidInputError(f"on_conflict must be 'fail', 'ours', 'theirs' or a "
                                    f"function, not {on_conflict!r:.80}")
        if name is not None:
            validate_branch_name(name)  # before the (long) merge, not after it
        prefer: Literal["ours", "theirs"] | None = (
            on_conflict if on_conflict in ("ours", "theirs") else None)
        plan = self._merge_plan(versions, prefer)
        if plan.conflicts and on_conflict != "fail":
            raise MergeConflictError(plan.conflicts, "A conflict function resolves voxel "
                                     "conflicts only: pass on_conflict='ours' or 'theirs'")
        # With "fail" nothing may be written before every chunk is known to merge cleanly:
        # merged chunks are held (up to a bound) and stored after the check.
        failing = on_conflict == "fail"
        results = self._merge_chunks(plan, on_conflict, encode=True, store=not failing,
                                     progress=progress)
        found = [m.conflict for _, m in results if m.conflict is not None]
        if plan.conflicts or found:
            raise MergeConflictError([*plan.conflicts, *found], _ADVICE)
        view = self._open(plan.versions[0])
        resolved: dict[tuple[str, Coords], bytes | None] = {}
        dropped = set()
        for p, merged in results:
            if merged.reuse:
                resolved[(p.array, p.coords)] = merged.digest
            elif merged.data is not None:
                resolved[(p.array, p.coords)] = view.store_blob(merged.data)
            else:
                dropped.add((p.array, p.coords))
        if dropped:
            for p, merged in self._merge_chunks(plan, on_conflict, encode=True, store=True,
                                                progress=progress, only=dropped):
                resolved[(p.array, p.coords)] = merged.digest
        record = write_merge(self._graph, self._open, plan, resolved, message, name,
                             _runner(self._ctx), self._ctx.io_pool.map)
        return record.uuid

    # -- history ----------------------------------------------------------------------------

    def log(self, version: str | None = None, all_parents: bool = True) -> list[NodeRecord]:
        """The history of ``version`` (default: the current version), newest first.

        ``all_parents=True`` walks the whole DAG ancestry, merge parents included, in an
        order where every node comes before its parents; ``False`` follows first parents
        only (:meth:`get_commit_log`'s path, reversed).
        """
        start = self._node(version).uuid
        if all_parents:
            return history.ancestry(self._graph, start)
        return self._graph.log(start)[::-1]

    def history(self, array: str, voxel: Sequence[int], version: str | None = None
                ) -> list[history.ChunkChange]:
        """The versions in the ancestry of ``version`` (default: the current one) where the
        chunk holding ``voxel`` of ``array`` changed, newest first — a blame for voxels.

        ``voxel`` is one index per axis, in numpy order. A version is listed when the
        chunk's content there differs from every parent's (a merge node only when the
        merge made new content). Cost: one manifest read and one O(log n) index lookup
        per version of the ancestry.

        Raises
        ------
        NotFoundError
            No such array at that version.
        InvalidIndexError
            ``voxel`` is not inside the array.
        """
        view = self._view if version is None else self._open(self._node(version))
        view.refresh()
        info = view.array(array)
        unit, _ = storage_grid(metadata_of(info))
        shape = tuple(info.zarr["shape"])
        if isinstance(voxel, (str, bytes)) or not isinstance(voxel, Sequence) \
                or len(voxel) != len(shape) \
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                           and 0 <= v < n for v, n in zip(voxel, shape, strict=False)):
            raise InvalidIndexError(f"voxel {voxel!r:.80} is not inside array {array!r} of "
                                    f"shape {shape}: give one index per axis (numpy order)")
        coords = tuple(int(v) // u for v, u in zip(voxel, unit, strict=True))
        return history.chunk_history(self._graph, view, self._ctx.page_cache, array, coords)

    def version_at(self, when: datetime | str, branch: str = DEFAULT_BRANCH) -> str:
        """UUID of the newest version of ``branch`` locked at or before ``when``.

        ``when`` is a datetime or an ISO-8601 string (without a time zone: UTC).

        Raises
        ------
        NotFoundError
            No such branch, or none of its versions was locked by then.
        InvalidInputError
            ``when`` is not a time.
        """
        if not isinstance(branch, str):
            raise InvalidInputError(f"a branch name is a string, not {branch!r:.80}")
        return history.version_at(self._graph, when, branch).uuid


@contextmanager
def _progress(label: str, total: int, show: bool | None) -> Iterator[Callable[[int], None]]:
    """A progress bar counting ``total`` bytes (see :class:`TransferProgress`), shown on a
    terminal; yields its ``advance``."""
    if not (sys.stdout.isatty() if show is None else show):
        yield lambda nbytes: None
        return
    # Imported here: diced.io is a package beside this module that imports DicedRepo.
    from diced.progress import TransferProgress

    with TransferProgress(label, total, show=True) as bar:
        yield bar.advance


def _cells(shape: Iterable[int]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def _runner(ctx: StoreContext) -> Callable[[Callable[[Any], object], Iterable[Any]], None]:
    def run(work: Callable[[Any], object], items: Iterable[Any]) -> None:
        for _ in ctx.io_pool.map(work, items):
            pass

    return run

