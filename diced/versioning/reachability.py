"""Everything a store's named repos reach: the walk behind gc, fsck, du and sync.

The *roots* of a store are ``diced.json`` and the repo names (``names/``). A named repo
reaches its ``repo.json``, its claims, hints, grafts and tags, every node the DAG holds
(attached by a claim or a graft) and, through the first parents of those, any ancestor
that is no longer attached (a ``delete_branch`` that raced a ``create_branch`` can leave
one; its child still reads its manifest). A locked node reaches its manifest, every page
of its index trees and every blob those trees and its file table name. An open or sealing
node reaches every object below ``open/<node>/`` (array entries, chunk and file pointers)
and the blobs its pointers name; its base (the parent's manifest) is reached through the
parent. Nothing else is reachable.

:class:`Walker` yields one :class:`Ref` per reached object, with where it was reached
from (repo, version, array, chunk coordinates or the box of chunks below an index page).
It reads what it must to go on (records, manifests, pages, pointers), verifying each as
diced's readers do, and never reads blobs (their consumers decide whether to). A damaged
object is a :class:`Problem`: a strict walker raises :class:`~diced.errors.StorageError`
for the first one; a tolerant one (fsck) records it and walks on.

With ``seen`` (a set of keys shared across calls) each content-addressed object (page,
blob, manifest) is yielded once, and a page's subtree is skipped when the page was seen:
the walk costs O(distinct objects) however long the history. Without it every version
yields everything it needs (for per-version sizes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from diced.backends import ObjectStore
from diced.errors import StorageError
from diced.versioning import keys
from diced.versioning.chunkindex import ChunkIndex, PageCache
from diced.versioning.digest import DIGEST_SIZE, digest
from diced.versioning.graph import VersionGraph
from diced.versioning.records import (
    ArrayEntry,
    Manifest,
    NodeRecord,
    RepoRecord,
    check_store_header,
    parse_uuid,
)
from diced.versioning.trash import read_immutable

__all__ = ["Kind", "Problem", "Ref", "Walker", "named_repos", "tag_node"]

Coords = tuple[int, ...]
Box = tuple[tuple[int, int], ...]


class Kind:
    """The kinds of object a walk reaches (the values of :attr:`Ref.kind`)."""

    HEADER = "store header"
    NAME = "repo name"
    REPO = "repo record"
    CLAIM = "branch claim"
    HINT = "branch hint"
    GRAFT = "graft"
    TAG = "tag"
    NODE = "node record"
    MANIFEST = "manifest"
    PAGE = "index page"
    BLOB = "blob"
    ENTRY = "array entry"
    POINTER = "pointer"

    #: Kinds named by their content digest (create-only, immutable).
    CONTENT = frozenset({MANIFEST, PAGE, BLOB})


@dataclass(frozen=True)
class Ref:
    """One reached object and where it was reached from.

    ``digest`` is the content digest a content-addressed object must have. ``coords`` is
    the chunk a blob or pointer holds; ``box`` the chunks below an index page (half-open
    per axis, in chunk coordinates); ``file`` the file a blob or pointer holds.
    """

    key: str
    kind: str
    repo: str | None = None
    node: str | None = None
    array: str | None = None
    file: str | None = None
    coords: Coords | None = None
    box: Box | None = None
    digest: bytes | None = None

    def where(self) -> str:
        """Where the object is used, for messages: ``version N, array A, chunk (1, 2)``."""
        parts = []
        if self.node is not None:
            parts.append(f"version {self.node}")
        elif self.repo is not None:
            parts.append(f"repo {self.repo}")
        if self.array is not None:
            parts.append(f"array {self.array!r}")
        if self.file is not None:
            parts.append(f"file {self.file!r}")
        if self.coords is not None:
            parts.append(f"chunk {self.coords}")
        if self.box is not None:
            parts.append("chunks " + "×".join(f"[{a}:{b})" for a, b in self.box))
        return ", ".join(parts) or "the store"


@dataclass(frozen=True)
class Problem:
    """A reached object that is missing or damaged: ``detail`` says which and how."""

    ref: Ref
    detail: str

    def message(self) -> str:
        return f"{self.ref.kind} {self.ref.key} ({self.ref.where()}): {self.detail}"


def named_repos(backend: ObjectStore,
                on_problem: Callable[[Problem], None] | None = None) -> list[tuple[str, str]]:
    """``(name, repo UUID)`` of every name claim of the store, sorted by name.

    A claim that does not hold a UUID is reported to ``on_problem`` (and skipped), or
    raises :class:`StorageError` without one.
    """
    found = []
    for key in backend.list_prefix(keys.repo_names_prefix()):
        data = backend.get(key)
        if data is None:
            continue
        try:
            uuid = parse_uuid(data, "repo name claim", key)
        except StorageError as exc:
            if on_problem is None:
                raise
            on_problem(Problem(Ref(key, Kind.NAME), str(exc)))
            continue
        found.append((keys.decode_name(key[len(keys.repo_names_prefix()):]), uuid))
    return sorted(found)


def tag_node(data: bytes, key: str) -> str:
    """The UUID of the node the tag object ``data`` (at ``key``) names.

    A tag holds JSON with at least the node's ``uuid``; :class:`StorageError` if not.
    """
    try:
        return parse_uuid(str(json.loads(data)["uuid"]).encode(), "tag", key)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise StorageError(f"tag {key!r} is corrupt ({exc}): the store is damaged; diced "
                           "fsck lists every damaged object") from exc


def _damage(ref: Ref, detail: str) -> StorageError:
    return StorageError(f"{ref.kind} {ref.key!r} ({ref.where()}) is {detail}: the store is "
                        "damaged; diced fsck lists every damaged object")


class Walker:
    """Walks what a store's repos reach (see the module docstring).

    Parameters
    ----------
    backend
        The store's backend; only read.
    pool
        Threads for reading index pages and pointers in parallel.
    strict
        Raise :class:`StorageError` at the first damaged object (else record it in
        :attr:`problems` and walk on).
    check_roots
        Also read and check claims, grafts and tags (fsck); otherwise they are only
        listed (gc, which keeps them whatever they hold).
    cache
        Decoded index pages to share (a store's own cache); a private one by default.
    """

    def __init__(self, backend: ObjectStore, pool: ThreadPoolExecutor, *, strict: bool,
                 check_roots: bool = False, cache: PageCache | None = None) -> None:
        self.backend = backend
        self.pool = pool
        self.strict = strict
        self.check_roots = check_roots
        self.problems: list[Problem] = []
        self.cache = cache if cache is not None else PageCache(max_pages=1 << 18)
        self._manifests: dict[tuple[str, str], Manifest | None] = {}

    def problem(self, ref: Ref, detail: str, *, damage: bool = True) -> None:
        """Record that ``ref`` is ``detail``; a strict walker raises for ``damage``.

        Not damage: an inconsistency of the DAG that loses nothing (the walk keeps what
        it needs), which fsck reports and gc walks past.
        """
        if self.strict and damage:
            raise _damage(ref, detail)
        self.problems.append(Problem(ref, detail))

    # -- the store --------------------------------------------------------------------------

    def store_refs(self, repos: Iterable[str] | None = None,
                   seen: set[str] | None = None) -> Iterator[Ref]:
        """Everything the store reaches (only the repos named in ``repos``, when given)."""
        header = Ref(keys.STORE_HEADER, Kind.HEADER)
        yield header
        data = self.backend.get(keys.STORE_HEADER)
        if data is None:
            self.problem(header, "missing")
        else:
            try:
                check_store_header(data, keys.STORE_HEADER)
            except Exception as exc:  # FormatVersionError too: the header is unusable
                self.problem(header, f"corrupt ({exc})")
        wanted = None if repos is None else set(repos)
        for name, repo in named_repos(self.backend, self._record_problem):
            if wanted is not None and name not in wanted:
                continue
            yield Ref(keys.repo_name(name), Kind.NAME, repo=repo)
            yield from self.repo_refs(repo, seen)

    def _record_problem(self, problem: Problem) -> None:
        self.problem(problem.ref, problem.detail)

    # -- one repo ---------------------------------------------------------------------------

    def repo_refs(self, repo: str, seen: set[str] | None = None) -> Iterator[Ref]:
        """Everything repo ``repo`` reaches: records, roots, and every node's objects."""
        ref = Ref(keys.repo_record(repo), Kind.REPO, repo=repo)
        yield ref
        data = self.backend.get(ref.key)
        if data is None:
            self.problem(ref, "missing")
        else:
            try:
                RepoRecord.from_bytes(data, ref.key)
            except StorageError as exc:
                self.problem(ref, f"corrupt ({exc})")
        yield from self.root_refs(repo)
        for record in self.nodes(repo):
            yield Ref(keys.node_record(repo, record.uuid), Kind.NODE, repo=repo,
                      node=record.uuid)
            yield from self.node_refs(record, seen)

    def root_refs(self, repo: str) -> Iterator[Ref]:
        """Claims, hints, grafts and tags of ``repo`` (checked with ``check_roots``)."""
        for prefix, kind in ((keys.branch_claims_prefix(repo), Kind.CLAIM),
                             (keys.next_claims_prefix(repo), Kind.CLAIM),
                             (keys.branch_heads_prefix(repo), Kind.HINT),
                             (keys.grafts_prefix(repo), Kind.GRAFT),
                             (keys.tags_prefix(repo), Kind.TAG)):
            for key in self.backend.list_prefix(prefix):
                ref = Ref(key, kind, repo=repo)
                yield ref
                if self.check_roots and kind != Kind.HINT:
                    self._check_root(ref)

    def _check_root(self, ref: Ref) -> None:
        """A claim, graft or tag must name a node whose record exists."""
        data = self.backend.get(ref.key)
        if data is None:
            return  # deleted while listing
        try:
            uuid = (tag_node(data, ref.key) if ref.kind == Kind.TAG
                    else parse_uuid(data, ref.kind, ref.key))
        except StorageError as exc:
            self.problem(ref, f"corrupt ({exc})")
            return
        assert ref.repo is not None
        if self.backend.get(keys.node_record(ref.repo, uuid)) is None:
            self.problem(ref, f"names version {uuid}, whose node record is missing")

    def nodes(self, repo: str) -> list[NodeRecord]:
        """Every attached node of ``repo``, plus detached ancestors of attached nodes."""
        graph = VersionGraph(self.backend, repo)
        prefix = keys.node_records_prefix(repo)
        records: dict[str, NodeRecord] = {}
        for key, data in zip(*self._read_all(list(self.backend.list_prefix(prefix))),
                             strict=True):
            if data is None:
                continue
            try:
                record = NodeRecord.from_bytes(data, key)
            except StorageError as exc:
                self.problem(Ref(key, Kind.NODE, repo=repo), f"corrupt ({exc})")
                continue
            records[record.uuid] = record
        def is_attached(record: NodeRecord) -> bool:
            first = records.get(record.parents[0]) if record.parents else None
            return graph.is_attached(record, first)

        # One claim read per node, in parallel (the graph's cache is a set: thread-safe).
        found = list(self.pool.map(is_attached, records.values()))
        attached = {r.uuid: r for r, ok in zip(records.values(), found, strict=True) if ok}
        needed = dict(attached)
        for record in attached.values():
            for parent in record.parents:
                self._ancestry(repo, parent, records, needed, record.uuid)
        return sorted(needed.values(), key=lambda r: r.created)

    def _ancestry(self, repo: str, uuid: str, records: Mapping[str, NodeRecord],
                  needed: dict[str, NodeRecord], child: str) -> None:
        """Add ``uuid`` and its ancestors to ``needed`` (a child in the DAG depends on them)."""
        stack = [(uuid, child)]
        while stack:
            uuid, child = stack.pop()
            if uuid in needed:
                continue
            ref = Ref(keys.node_record(repo, uuid), Kind.NODE, repo=repo, node=uuid)
            record = records.get(uuid)
            if record is None:
                self.problem(ref, f"missing (it is a parent of version {child})")
                continue
            self.problem(ref, f"not attached to the DAG, but version {child} is its child "
                              "(a delete_branch raced a create_branch?)", damage=False)
            needed[uuid] = record
            stack.extend((p, uuid) for p in record.parents)

    def _read_all(self, key_list: list[str]) -> tuple[list[str], list[bytes | None]]:
        """``key_list`` and the bytes of each key, read in parallel."""
        return key_list, list(self.pool.map(self.backend.get, key_list))

    # -- one node ---------------------------------------------------------------------------

    def manifest(self, repo: str, manifest_hex: str, node: str) -> Manifest | None:
        """The manifest ``manifest_hex`` (cached), or ``None`` after reporting its damage."""
        cached = (repo, manifest_hex)
        if cached not in self._manifests:
            ref = Ref(keys.manifest(repo, manifest_hex), Kind.MANIFEST, repo=repo, node=node,
                      digest=bytes.fromhex(manifest_hex))
            data = read_immutable(self.backend, ref.key)
            manifest = None
            if data is None:
                self.problem(ref, "missing")
            elif digest(data).hex() != manifest_hex:
                self.problem(ref, "corrupt (its bytes do not match their digest)")
            else:
                try:
                    manifest = Manifest.from_bytes(data, ref.key)
                except StorageError as exc:
                    self.problem(ref, f"corrupt ({exc})")
            self._manifests[cached] = manifest
        return self._manifests[cached]

    def node_refs(self, record: NodeRecord, seen: set[str] | None = None) -> Iterator[Ref]:
        """Every object node ``record`` reaches below its record (see the module docstring)."""
        if record.locked:
            yield from self._locked_refs(record, seen)
        else:
            yield from self._open_refs(record)

    def _locked_refs(self, record: NodeRecord, seen: set[str] | None) -> Iterator[Ref]:
        repo, node = record.repo, record.uuid
        assert record.manifest is not None
        key = keys.manifest(repo, record.manifest)
        if seen is not None and key in seen:
            return
        if seen is not None:
            seen.add(key)
        yield Ref(key, Kind.MANIFEST, repo=repo, node=node,
                  digest=bytes.fromhex(record.manifest))
        manifest = self.manifest(repo, record.manifest, node)
        if manifest is None:
            return
        for name, array in manifest.arrays.items():
            if array.root is not None:
                yield from self.tree_refs(Ref("", Kind.PAGE, repo=repo, node=node, array=name),
                                          len(array.zarr["shape"]), array.root, array.height,
                                          seen)
        for name, hexd in manifest.files.items():
            yield from self._blob(Ref(keys.blob(repo, hexd), Kind.BLOB, repo=repo, node=node,
                                      file=name, digest=bytes.fromhex(hexd)), seen)

    def _blob(self, ref: Ref, seen: set[str] | None) -> Iterator[Ref]:
        if seen is not None:
            if ref.key in seen:
                return
            seen.add(ref.key)
        yield ref

    def tree_refs(self, where: Ref, ndim: int, root: str, height: int,
                  seen: set[str] | None) -> Iterator[Ref]:
        """Pages and blobs of one index tree, read level by level, each level in parallel.

        ``where`` carries the repo, node and array the refs are reached from.
        """
        assert where.repo is not None
        repo = where.repo
        index = ChunkIndex(self.backend, repo, ndim, self.cache)
        frontier: list[tuple[bytes, int, Coords]] = [(bytes.fromhex(root), height - 1,
                                                      (0,) * ndim)]
        while frontier:
            todo = []
            for page_digest, level, base in frontier:
                key = keys.page(repo, page_digest.hex())
                if seen is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                todo.append((page_digest, level, base))
            pages = list(self.pool.map(lambda item: self._read_page(index, item[0]), todo))
            frontier = []
            for (page_digest, level, base), page in zip(todo, pages, strict=True):
                span = 1 << (index.bits * (level + 1))
                ref = replace(where, key=keys.page(repo, page_digest.hex()), kind=Kind.PAGE,
                              box=tuple((b, b + span) for b in base), digest=page_digest)
                yield ref
                if isinstance(page, str):
                    self.problem(ref, page)
                    continue
                for slot, entry in page.items():
                    coords = index.slot_coords(base, slot, level)
                    if level > 0:
                        frontier.append((entry, level - 1, coords))
                        continue
                    yield from self._blob(replace(where, key=keys.blob(repo, entry.hex()),
                                                  kind=Kind.BLOB, coords=coords, digest=entry),
                                          seen)

    def _read_page(self, index: ChunkIndex, page_digest: bytes) -> Mapping[int, bytes] | str:
        """The page, or what is wrong with it."""
        try:
            return index.read_page(page_digest)
        except StorageError as exc:
            key = keys.page(index.repo, page_digest.hex())
            if read_immutable(self.backend, key) is None:
                return "missing"
            return f"corrupt ({exc})"

    def _open_refs(self, record: NodeRecord) -> Iterator[Ref]:
        """An open or sealing node: its entries, pointers and the blobs pointers name."""
        repo, node = record.repo, record.uuid
        arrays = self._open_arrays(record)
        entries_prefix = keys.array_entries_prefix(repo, node)
        files_prefix = keys.file_pointers_prefix(repo, node)
        listed = list(self.backend.list_prefix(keys.open_node_prefix(repo, node)))
        pointers = [k for k in listed if not k.startswith(entries_prefix)]
        for key in listed:
            if key.startswith(entries_prefix):
                yield Ref(key, Kind.ENTRY, repo=repo, node=node,
                          array=key[len(entries_prefix):])
        for key, data in zip(*self._read_all(pointers), strict=True):
            ref = Ref(key, Kind.POINTER, repo=repo, node=node)
            if key.startswith(files_prefix):
                ref = replace(ref, file=keys.decode_name(key[len(files_prefix):]))
            else:
                ref = self._chunk_context(ref, arrays)
            yield ref
            if data is None:
                continue  # replaced or removed while listing
            if len(data) not in (0, DIGEST_SIZE):
                self.problem(ref, f"corrupt ({len(data)} bytes, not 0 or {DIGEST_SIZE})")
            elif data:
                yield Ref(keys.blob(repo, data.hex()), Kind.BLOB, repo=repo, node=node,
                          array=ref.array, file=ref.file, coords=ref.coords, digest=data)

    def _open_arrays(self, record: NodeRecord) -> dict[str, tuple[str, int]]:
        """Array identity → (name, ndim) at an open node, for the context of pointers."""
        repo, node = record.repo, record.uuid
        found: dict[str, tuple[str, int]] = {}
        if record.parents:
            parent = self.backend.get(keys.node_record(repo, record.parents[0]))
            try:
                parent_record = None if parent is None else NodeRecord.from_bytes(parent)
            except StorageError:
                parent_record = None  # reported where the parent itself is walked
            if parent_record is not None and parent_record.manifest is not None:
                base = self.manifest(repo, parent_record.manifest, parent_record.uuid)
                for name, array in (base.arrays.items() if base is not None else ()):
                    found[array.id] = (name, len(array.zarr["shape"]))
        prefix = keys.array_entries_prefix(repo, node)
        for key, data in zip(*self._read_all(list(self.backend.list_prefix(prefix))),
                             strict=True):
            if data is None:
                continue
            try:
                entry = ArrayEntry.from_bytes(data, key)
            except StorageError as exc:
                self.problem(Ref(key, Kind.ENTRY, repo=repo, node=node,
                                 array=key[len(prefix):]), f"corrupt ({exc})")
                continue
            if not entry.deleted:
                found[entry.id] = (key[len(prefix):], len(entry.zarr["shape"]))
        return found

    @staticmethod
    def _chunk_context(ref: Ref, arrays: Mapping[str, tuple[str, int]]) -> Ref:
        """``ref`` (a chunk pointer) with its array name and chunk coordinates when known."""
        assert ref.repo is not None and ref.node is not None
        array_id = keys.chunk_pointer_array(ref.key, ref.repo, ref.node) or ""
        name, ndim = arrays.get(array_id, (f"(deleted array {array_id[:8]})", -1))
        coords: Any = None
        if ndim >= 0:
            try:
                coords = keys.chunk_pointer_coords(
                    ref.key, keys.chunk_pointers_prefix(ref.repo, ref.node, array_id), ndim)
            except StorageError:
                coords = None
        return replace(ref, array=name, coords=coords)
