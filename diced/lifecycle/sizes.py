"""Stored sizes (``diced du``): compressed bytes per array, version, repo and store.

Sizes are the bytes the backend stores, from one listing (``list_info``) of the repo.
A version *needs* its node record, its manifest, every index page and blob of its trees
and file table (an open version: its entries and pointers, and its parent's pages and
blobs where it changed nothing). An array needs its pages and blobs. What a version
needs and none of its parents does is *unique* to it (deleting the version alone would
free at most that); the rest is *shared* with a parent. Objects are counted once however
many chunks hold the same bytes.

Cost: one listing of the repo, and a walk of every reported version's trees (pages are
read once and cached): O(chunks × versions) set operations in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from diced.backends import ObjectStore
from diced.errors import DicedException
from diced.lifecycle.usage import Usage
from diced.versioning import keys
from diced.versioning.chunkindex import PageCache
from diced.versioning.graph import VersionGraph
from diced.versioning.node import NodeView
from diced.versioning.reachability import Kind, Ref, Walker, named_repos
from diced.versioning.records import NodeRecord

__all__ = ["ArrayUsage", "RepoUsage", "StoreUsage", "VersionUsage", "repo_usage",
           "store_usage"]


@dataclass(frozen=True)
class ArrayUsage:
    """One array at one version: stored chunks, and the bytes of its blobs and pages."""

    name: str
    chunks: int
    stored: Usage
    unique: Usage

    @property
    def shared(self) -> Usage:
        """What a parent version needs too."""
        return self.stored - self.unique


@dataclass(frozen=True)
class VersionUsage:
    """What one version needs (``stored``), and how much of it no parent needs."""

    uuid: str
    branch: str
    state: str
    parents: tuple[str, ...]
    arrays: tuple[ArrayUsage, ...]
    files: Usage
    stored: Usage
    unique: Usage

    @property
    def shared(self) -> Usage:
        return self.stored - self.unique

    def array(self, name: str) -> ArrayUsage | None:
        """The usage of array ``name`` (``None`` if the version has no such array)."""
        return next((a for a in self.arrays if a.name == name), None)


@dataclass(frozen=True)
class RepoUsage:
    """A repo: what its versions need together (``reachable``), what lies unreferenced
    below it (a garbage collector may delete it), and per-version detail when asked.

    ``missing`` counts objects the repo needs that the backend does not list (damage, or
    objects held in the garbage collector's trash).
    """

    name: str
    uuid: str
    reachable: Usage
    unreferenced: Usage
    versions: tuple[VersionUsage, ...] = ()
    missing: int = 0

    @property
    def total(self) -> Usage:
        return self.reachable + self.unreferenced


@dataclass(frozen=True)
class StoreUsage:
    """A store: its repos, and every object it holds (``total``).

    ``unreferenced`` is what no named repo reaches (repos included); ``trash`` what the
    garbage collector holds before deleting it for good.
    """

    repos: tuple[RepoUsage, ...]
    total: Usage
    unreferenced: Usage
    trash: Usage


@dataclass
class _Sets:
    """The keys one version needs: per array, files, and the version's own objects."""

    arrays: dict[str, set[str]] = field(default_factory=dict)
    chunks: dict[str, int] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    own: set[str] = field(default_factory=set)

    def all(self) -> set[str]:
        found = self.own | self.files
        for array in self.arrays.values():
            found |= array
        return found


class _Sizer:
    """Per-version key sets of one repo, and their sizes from one listing."""

    def __init__(self, backend: ObjectStore, pool: ThreadPoolExecutor, repo: str,
                 cache: PageCache | None) -> None:
        self.backend = backend
        self.repo = repo
        self.walker = Walker(backend, pool, strict=False, cache=cache)
        self.graph = VersionGraph(backend, repo)
        self.sizes = {i.key: i.size for i in backend.list_info(keys.repo_prefix(repo))}
        self.records = {r.uuid: r for r in self.walker.nodes(repo)}
        self._sets: dict[str, set[str]] = {}

    def usage(self, found: Iterable[str]) -> Usage:
        """The listed objects among ``found`` (one missing is not counted)."""
        present = [self.sizes[k] for k in set(found) if k in self.sizes]
        return Usage(len(present), sum(present))

    def version_sets(self, record: NodeRecord) -> _Sets:
        sets = _Sets(own={keys.node_record(self.repo, record.uuid)})
        refs: Iterable[Ref]
        refs = self.walker.node_refs(record) if record.locked else self._open_refs(record)
        for ref in refs:
            if ref.array is not None and ref.kind in (Kind.PAGE, Kind.BLOB):
                sets.arrays.setdefault(ref.array, set()).add(ref.key)
                if ref.kind == Kind.BLOB:
                    sets.chunks[ref.array] = sets.chunks.get(ref.array, 0) + 1
            elif ref.file is not None and ref.kind == Kind.BLOB:
                sets.files.add(ref.key)
            else:
                sets.own.add(ref.key)
        return sets

    def _open_refs(self, record: NodeRecord) -> Iterable[Ref]:
        """An open version: its own objects, and its parent's where it changed nothing."""
        own = list(self.walker.node_refs(record))
        yield from (r for r in own if r.kind != Kind.BLOB)
        try:
            view = NodeView.open(self.backend, record, self.walker.cache, self.graph.node)
            arrays = view.arrays()
            files = view.files(include_hidden=True)
        except DicedException:
            return
        where = Ref("", Kind.PAGE, repo=self.repo, node=record.uuid)
        for name, info in arrays.items():
            if info.base is not None and info.base.root is not None:
                yield from (Ref(r.key, Kind.PAGE, repo=self.repo, node=record.uuid, array=name)
                            for r in self.walker.tree_refs(where, info.ndim, info.base.root,
                                                           info.base.height, set())
                            if r.kind == Kind.PAGE)
            for chunk_digest in view.chunks(info).values():
                yield Ref(keys.blob(self.repo, chunk_digest.hex()), Kind.BLOB, repo=self.repo,
                          node=record.uuid, array=name)
        for name, file_digest in files.items():
            yield Ref(keys.blob(self.repo, file_digest.hex()), Kind.BLOB, repo=self.repo,
                      node=record.uuid, file=name)

    def needed(self, uuid: str) -> set[str]:
        """Every key version ``uuid`` needs (memoized: parents are asked for often)."""
        if uuid not in self._sets:
            record = self.records.get(uuid)
            self._sets[uuid] = set() if record is None else self.version_sets(record).all()
        return self._sets[uuid]

    def version(self, record: NodeRecord) -> VersionUsage:
        sets = self.version_sets(record)
        everything = sets.all()
        self._sets[record.uuid] = everything
        parents: set[str] = set()
        for parent in record.parents:
            parents |= self.needed(parent)
        arrays = tuple(ArrayUsage(name, sets.chunks.get(name, 0), self.usage(found),
                                  self.usage(found - parents))
                       for name, found in sorted(sets.arrays.items()))
        return VersionUsage(record.uuid, record.branch, record.state, record.parents, arrays,
                            self.usage(sets.files), self.usage(everything),
                            self.usage(everything - parents))


def repo_usage(backend: ObjectStore, repo: str, name: str, *,
               versions: Iterable[str] | None = None, jobs: int = 16,
               cache: PageCache | None = None) -> RepoUsage:
    """The usage of repo ``repo`` (UUID) named ``name``.

    ``versions``: full UUIDs of the versions to detail (``None``: every version; an
    empty iterable: none, totals only). ``cache``: decoded index pages to share (pages
    never change, so a store's cache makes repeated reports cheap).
    """
    with ThreadPoolExecutor(jobs, thread_name_prefix="diced-du") as pool:
        sizer = _Sizer(backend, pool, repo, cache)
        reached = {ref.key for ref in sizer.walker.repo_refs(repo, set())}
        chosen = list(sizer.records) if versions is None else list(versions)
        detail = tuple(sizer.version(sizer.records[u] if u in sizer.records
                                     else sizer.graph.node(u)) for u in chosen)
    missing = sum(1 for key in reached if key not in sizer.sizes)
    unreferenced = {k for k in sizer.sizes if k not in reached}
    return RepoUsage(name, repo, sizer.usage(reached), sizer.usage(unreferenced), detail,
                     missing)


def store_usage(backend: ObjectStore, *, jobs: int = 16, cache: PageCache | None = None
                ) -> StoreUsage:
    """Totals per repo and for the whole store (no per-version detail)."""
    repos = tuple(repo_usage(backend, uuid, name, versions=(), jobs=jobs, cache=cache)
                  for name, uuid in named_repos(backend, lambda problem: None))
    listed = list(backend.list_info(""))
    reachable = sum((r.reachable for r in repos), Usage())
    in_repos = Usage.of(i for i in listed if i.key.startswith(keys.repos_prefix()))
    trash = Usage.of(i for i in listed if i.key.startswith(keys.TRASH_PREFIX))
    return StoreUsage(repos, Usage.of(listed), in_repos - reachable, trash)
