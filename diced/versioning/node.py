"""Contents of one version node: arrays, chunks and files, read and written safely.

A *locked* node is fully described by its immutable manifest (array entries plus one
chunk-index tree per array, and a file table). An *open* node is its parent's manifest
(the *base*) overlaid with small mutable objects of its own: one array entry per array
created, changed or deleted, one pointer per chunk written, one pointer per file written.
Pointers hold the digest of immutable, content-addressed bytes (or nothing, for a chunk
equal to the fill value or a deleted file), so:

* a chunk write is one create-only blob write plus one pointer write, each atomic;
* a partial-chunk write is made safe by a conditional pointer write against the version
  token read with the pointer (see :mod:`diced.chunk_access`, which owns the retry loop);
* locking reads the pointers once, folds them into the parent's index trees (copy on
  write), writes a manifest, and flips the node record. Later stray pointer writes can
  never change what the locked node reads, because it reads only its manifest.

Chunks are addressed by coordinate tuples in the array's storage grid; only
:mod:`diced.versioning.keys` turns them into keys. Every immutable object read here (blob,
page, manifest) is checked against the digest that names it, and every mutable one
(records, entries, pointers) is parsed strictly: damage raises :class:`StorageError`
naming the object, never a wrong answer.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from diced.backends import ObjectStore
from diced.errors import (
    AlreadyExistsError,
    ConflictError,
    LockedError,
    NotFoundError,
    StorageError,
)
from diced.versioning import keys
from diced.versioning.chunkindex import ChunkIndex, PageCache
from diced.versioning.digest import DIGEST_SIZE, digest
from diced.versioning.records import (
    ArrayEntry,
    Manifest,
    ManifestArray,
    NodeRecord,
    corrupt,
)
from diced.versioning.trash import read_immutable

__all__ = ["UNCONDITIONAL", "ZARR_OBJECT_PREFIX", "ArrayInfo", "ChunkState", "NodeView", "Prepare",
           "load_manifest", "not_open_error"]

T = TypeVar("T")
_R = TypeVar("_R", NodeRecord, ArrayEntry)
Coords = tuple[int, ...]
Extents = tuple[tuple[int, int], ...]

#: Files whose name starts with this hold the objects of a version's zarr hierarchy that are
#: not array metadata or chunks (group documents, attributes...); users cannot name a file
#: so (names never contain NUL), and listings of files leave them out.
ZARR_OBJECT_PREFIX = "\x00zarr/"
#: ``expect`` value for :meth:`NodeView.publish_chunk` meaning "write unconditionally".
UNCONDITIONAL: Any = object()
_ENTRY_RETRIES = 1000
#: Parsed records a view remembers (by their bytes) before it forgets them all.
_PARSED_KEPT = 64
#: Listings a lock sends at once (the pointers of this many arrays, and the files).
_LISTINGS_IN_FLIGHT = 16


class _Inline(Executor):
    """An executor that runs each call at once on the caller's thread.

    A local disk answers a lock's listings in microseconds: starting and joining threads
    for them cost more than they overlap (a one-chunk lock took ~1.5 ms longer with them).
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed over like a pool's future would
            future.set_exception(exc)
        return future


@dataclass(frozen=True)
class ArrayInfo:
    """An array as seen from one node.

    ``base`` is the locked index tree that chunks not overridden by this node come from:
    the node's own tree when it is locked, the parent's tree of the same array identity
    when the node is open, ``None`` when there is none.
    """

    name: str
    id: str
    zarr: Mapping[str, Any]
    base: ManifestArray | None

    @property
    def ndim(self) -> int:
        return len(self.zarr["shape"])


@dataclass(frozen=True)
class ChunkState:
    """What one chunk is at one moment: the digest of its bytes and the pointer's version.

    ``digest`` is ``None`` for a chunk holding only the fill value. ``token`` is the
    version token of this node's pointer for the chunk, ``None`` when the node has no
    pointer (the chunk comes from the base tree); pass it to
    :meth:`NodeView.publish_chunk` for a write that lands only if nothing changed since.
    """

    digest: bytes | None
    token: str | None


#: The hook :meth:`NodeView.lock` runs once the node is sealed: the node's arrays by name →
#: the pointers to lock for some of them, by array id.
Prepare = Callable[[Mapping[str, ArrayInfo]], Mapping[str, Mapping[Coords, bytes | None]]]


def not_open_error(record: NodeRecord) -> LockedError:
    """The error for a write at a node that is not open, saying what is true and what helps."""
    if record.state == "sealing":
        return LockedError(
            f"version node {record.uuid} has an unfinished lock (state 'sealing': a lock "
            "started and did not complete, e.g. its process was killed); it takes no writes. "
            "Call lock_node(message) on it again to finish the lock, then create_branch to "
            "write"
        )
    return LockedError(
        f"version node {record.uuid} is locked and can never change; create a branch "
        "with create_branch(message) and write there"
    )


def _union(a: Extents | None, coords: list[Coords]) -> Extents | None:
    bounds = [list(e) for e in a] if a is not None else None
    for c in coords:
        if bounds is None:
            bounds = [[x, x + 1] for x in c]
        else:
            for b, x in zip(bounds, c, strict=True):
                b[0], b[1] = min(b[0], x), max(b[1], x + 1)
    return None if bounds is None else tuple((lo, hi) for lo, hi in bounds)


def _pointer_digest(data: bytes, key: str) -> bytes | None:
    """The digest a pointer holds (``None``: the fill value / a deletion)."""
    if len(data) not in (0, DIGEST_SIZE):
        raise corrupt("pointer", key, f"{len(data)} bytes, not 0 or {DIGEST_SIZE}")
    return data or None


class NodeView:
    """Read and write the contents of one node of one repo.

    Construct with :meth:`open`. A view of an open node re-reads pointers on every access,
    so it sees writes from every process at once; metadata (array entries) is re-read by
    :meth:`arrays` and :meth:`array`.
    """

    def __init__(self, backend: ObjectStore, record: NodeRecord, base: Manifest,
                 cache: PageCache) -> None:
        self.backend = backend
        self.record = record
        self.repo = record.repo
        self.uuid = record.uuid
        self.base = base
        self.cache = cache
        self._indexes: dict[int, ChunkIndex] = {}
        self._parsed: dict[tuple[type, bytes], Any] = {}
        #: Bumped when the view switches from open to locked (see :meth:`refresh`); array
        #: handles compare it to know their :class:`ArrayInfo` must be re-read.
        self.generation = 0

    def _parse(self, kind: type[_R], data: bytes, key: str) -> _R:
        """``kind.from_bytes(data, key)``, remembered by the exact bytes.

        An open node's reads re-read its record and the array's entry every time (other
        processes may have changed them); parsing them (JSON, then validation) cost
        ~50 µs a read, three times the reads themselves. The same bytes always parse to
        the same immutable record, so a hit is exactly what parsing would return.
        """
        memo = self._parsed
        found = memo.get((kind, data))
        if found is None:
            found = kind.from_bytes(data, key)
            if len(memo) >= _PARSED_KEPT:
                memo.clear()
            memo[(kind, data)] = found
        return found

    @classmethod
    def open(cls, backend: ObjectStore, record: NodeRecord, cache: PageCache,
             load_record: Callable[[str], NodeRecord]) -> NodeView:
        """View of ``record``; ``load_record(uuid)`` fetches the parent's record."""
        if record.locked:
            assert record.manifest is not None
            base = load_manifest(backend, record.repo, record.manifest)
        elif record.parents:
            parent = load_record(record.parents[0])
            if not parent.locked or parent.manifest is None:
                raise StorageError(f"node {record.uuid} has an open parent: the store is damaged")
            base = load_manifest(backend, record.repo, parent.manifest)
        else:
            base = Manifest()
        return cls(backend, record, base, cache)

    @property
    def locked(self) -> bool:
        """Whether the node was locked when this view was made or last refreshed."""
        return self.record.locked

    def refresh(self) -> None:
        """Switch an open view to the node's manifest if the node has been locked since.

        A locked node reads only its manifest; pointers written by a writer that raced
        the lock are in no version and must never be read again.
        """
        if not self.record.locked:
            self._follow(self.load_record())

    def _follow(self, record: NodeRecord) -> bool:
        """Switch to ``record``'s manifest if it is locked; return whether it is."""
        if record.locked and record.manifest is not None:
            self._switch(record, load_manifest(self.backend, self.repo, record.manifest))
            return True
        return False

    def refresh_for_read(self, info: ArrayInfo, coords: Sequence[Coords]
                         ) -> tuple[ArrayInfo | None, dict[Coords, bytes | None]] | None:
        """:meth:`refresh`, :meth:`find_array` and the digests of ``coords``, in one batch.

        For a small read at an open node of a remote store: the node record, the array's
        entry and the chunks' pointers travel together (one round trip instead of three).
        Returns ``None`` when the node turned out to be locked (the view has switched to
        its manifest; start over). Otherwise returns the array ``info.name`` as stored now
        (``None``: deleted) and, when it is still the array ``info`` names, each chunk's
        digest at this node (its pointer's, or the base tree's where it has none; ``None``
        is the fill value); else no digests.
        """
        if self.locked:
            return None
        record_key = keys.node_record(self.repo, self.uuid)
        entry_key = keys.array_entry(self.repo, self.uuid, info.name)
        pointer_keys = [keys.chunk_pointer(self.repo, self.uuid, info.id, c) for c in coords]
        record_data, entry_data, *pointers = self.backend.get_many(
            [record_key, entry_key, *pointer_keys])
        if record_data is None:
            raise NotFoundError(f"version node {self.uuid} no longer exists")
        if self._follow(self._parse(NodeRecord, record_data, record_key)):
            return None
        current = self._entry_info(info.name, entry_data, entry_key)
        if current is None or current.id != info.id:
            return current, {}
        return current, {c: self.base_digest(current, c) if data is None
                         else _pointer_digest(data, key)
                         for c, key, data in zip(coords, pointer_keys, pointers, strict=True)}

    def _switch(self, record: NodeRecord, manifest: Manifest) -> None:
        self.record, self.base = record, manifest
        self.generation += 1

    def index(self, ndim: int) -> ChunkIndex:
        if ndim not in self._indexes:
            self._indexes[ndim] = ChunkIndex(self.backend, self.repo, ndim, self.cache)
        return self._indexes[ndim]

    # -- node state -------------------------------------------------------------------------

    def _load_versioned(self) -> tuple[NodeRecord, str]:
        key = keys.node_record(self.repo, self.uuid)
        found = self.backend.get_versioned(key)
        if found is None:
            raise NotFoundError(f"version node {self.uuid} no longer exists")
        return self._parse(NodeRecord, found.data, key), found.token

    def load_record(self) -> NodeRecord:
        """The node's record as stored now."""
        return self._load_versioned()[0]

    def check_open(self) -> None:
        """Raise :class:`LockedError` unless the node (as stored now) accepts writes."""
        record = self.load_record()
        if record.state != "open":
            raise not_open_error(record)

    def guarded(self, write: Callable[[], T]) -> T:
        """Run ``write`` on an open node, then confirm the node was not locked meanwhile.

        Raises
        ------
        LockedError
            The node was not open before the write (nothing was written).
        ConflictError
            Another process locked the node while the write ran: the write may or may not
            be part of the locked version.
        """
        self.check_open()
        return self._confirm_open(write())

    def guarded_array(self, name: str, write: Callable[[ArrayInfo | None], T]) -> T:
        """:meth:`guarded` for a write to array ``name``: ``write`` gets the array as
        stored now (``None``: there is none).

        The node record and the array's entry are read in one batch (on a bucket, one
        round trip instead of two). Raises as :meth:`guarded`.
        """
        record_key = keys.node_record(self.repo, self.uuid)
        entry_key = keys.array_entry(self.repo, self.uuid, name)
        record_data, entry_data = self.backend.get_many([record_key, entry_key])
        if record_data is None:
            raise NotFoundError(f"version node {self.uuid} no longer exists")
        record = NodeRecord.from_bytes(record_data, record_key)
        if record.state != "open":
            raise not_open_error(record)
        return self._confirm_open(write(self._entry_info(name, entry_data, entry_key)))

    def _confirm_open(self, result: T) -> T:
        """``result``, once the node is confirmed open after the write that made it."""
        if self.load_record().state != "open":
            raise ConflictError(
                f"version node {self.uuid} was locked by another process during this write; "
                "the write may be incomplete in the locked version: branch and write again"
            )
        return result

    # -- arrays -----------------------------------------------------------------------------

    def _live_entries(self) -> dict[str, ArrayEntry]:
        if self.locked:
            return {}
        prefix = keys.array_entries_prefix(self.repo, self.uuid)
        entries = {}
        for key, data in self._listed(prefix):
            if data is not None:
                entries[key[len(prefix):]] = ArrayEntry.from_bytes(data, key)
        return entries

    def _listed(self, prefix: str) -> list[tuple[str, bytes | None]]:
        """Every object under ``prefix`` with its bytes (``None``: deleted since listed).

        One listing, then one batch of gets: on a bucket the gets travel together instead
        of one round trip each (a lock reads every pointer of the node this way).
        """
        found = list(self.backend.list_prefix(prefix))
        return list(zip(found, self.backend.get_many(found), strict=True))

    def _info(self, name: str, entry: ArrayEntry | None) -> ArrayInfo | None:
        base = self.base.arrays.get(name)
        if entry is None:
            return None if base is None else ArrayInfo(name, base.id, base.zarr, base)
        if entry.deleted:
            return None
        return ArrayInfo(name, entry.id, entry.zarr,
                         base if base is not None and base.id == entry.id else None)

    def arrays(self) -> dict[str, ArrayInfo]:
        """Every array visible at this node, by name."""
        live = self._live_entries()
        names = set(self.base.arrays) | set(live)
        infos = {n: self._info(n, live.get(n)) for n in sorted(names)}
        return {n: i for n, i in infos.items() if i is not None}

    def find_array(self, name: str) -> ArrayInfo | None:
        """The array ``name`` at this node as stored now, or ``None``."""
        if self.locked:
            return self._info(name, None)
        key = keys.array_entry(self.repo, self.uuid, name)
        return self._entry_info(name, self.backend.get(key), key)

    def _entry_info(self, name: str, data: bytes | None, key: str) -> ArrayInfo | None:
        """The array ``name`` given its entry's bytes at this open node (``None``: none)."""
        return self._info(name, None if data is None else self._parse(ArrayEntry, data, key))

    def array(self, name: str) -> ArrayInfo:
        """The array ``name`` at this node; :class:`NotFoundError` if there is none."""
        info = self.find_array(name)
        if info is None:
            raise NotFoundError(
                f"no array named {name!r} in version {self.uuid}; list_instances() shows "
                "the arrays there"
            )
        return info

    def _swap_entry(self, name: str, make: Callable[[ArrayEntry | None, ArrayInfo | None],
                                                    ArrayEntry]) -> ArrayEntry:
        """Replace the array entry of ``name`` by ``make(live entry, visible info)``, atomically."""
        key = keys.array_entry(self.repo, self.uuid, name)
        for _ in range(_ENTRY_RETRIES):
            found = self.backend.get_versioned(key)
            entry = None if found is None else ArrayEntry.from_bytes(found.data, key)
            new = make(entry, self._info(name, entry))
            if self.backend.put_if_match(key, new.to_bytes(),
                                         None if found is None else found.token):
                return new
        raise ConflictError(f"array {name!r} kept changing under concurrent writers; try again")

    def create_array(self, name: str, zarr_meta: Mapping[str, Any]) -> ArrayInfo:
        """Create array ``name`` with zarr v3 metadata ``zarr_meta``; exactly one racer wins."""
        def make(entry: ArrayEntry | None, info: ArrayInfo | None) -> ArrayEntry:
            if info is not None:
                raise AlreadyExistsError(
                    f"an array named {name!r} already exists in version {self.uuid}; choose "
                    "another name or delete_array it first"
                )
            return ArrayEntry(id=uuidlib.uuid4().hex, zarr=dict(zarr_meta))

        entry = self.guarded(lambda: self._swap_entry(name, make))
        return ArrayInfo(name, entry.id, entry.zarr, None)

    def replace_array(self, name: str, zarr_meta: Mapping[str, Any]) -> ArrayInfo:
        """Create array ``name``, or replace an existing one by a new, empty identity.

        One atomic entry write: readers see the old array or the new one, never neither
        (zarr's ``overwrite=True``).
        """
        def make(entry: ArrayEntry | None, info: ArrayInfo | None) -> ArrayEntry:
            return ArrayEntry(id=uuidlib.uuid4().hex, zarr=dict(zarr_meta))

        entry = self.guarded(lambda: self._swap_entry(name, make))
        return ArrayInfo(name, entry.id, entry.zarr, None)

    def set_array_metadata(self, name: str, zarr_meta: Mapping[str, Any],
                           array_id: str | None = None) -> ArrayInfo:
        """Replace the zarr metadata of an existing array (e.g. after a resize).

        With ``array_id``, only if the array still has that identity (else
        :class:`NotFoundError`): a handle never changes an array created after it.
        """
        def make(entry: ArrayEntry | None, info: ArrayInfo | None) -> ArrayEntry:
            if info is None or (array_id is not None and info.id != array_id):
                raise NotFoundError(f"no array named {name!r} in version {self.uuid} (it was "
                                    "deleted, or replaced by another of the same name)")
            return ArrayEntry(id=info.id, zarr=dict(zarr_meta))

        self.guarded(lambda: self._swap_entry(name, make))
        return self.array(name)

    def delete_array(self, name: str) -> None:
        """Hide array ``name`` at this node and its future descendants (not its ancestors)."""
        def make(entry: ArrayEntry | None, info: ArrayInfo | None) -> ArrayEntry:
            if info is None:
                raise NotFoundError(f"no array named {name!r} in version {self.uuid}")
            return ArrayEntry(id=info.id, deleted=True)

        self.guarded(lambda: self._swap_entry(name, make))

    # -- chunks -----------------------------------------------------------------------------

    def chunk_state(self, info: ArrayInfo, coords: Coords) -> ChunkState:
        """The chunk at ``coords`` now: its digest and this node's pointer version.

        An open node reads its pointer (one request); without one, or at a locked node,
        the base tree answers (cached index pages).
        """
        if not self.locked:
            key = keys.chunk_pointer(self.repo, self.uuid, info.id, coords)
            pointer = self.backend.get_versioned(key)
            if pointer is not None:
                return ChunkState(_pointer_digest(pointer.data, key), pointer.token)
        return ChunkState(self.base_digest(info, coords), None)

    def base_digest(self, info: ArrayInfo, coords: Coords) -> bytes | None:
        """The digest the base tree (the parent's, at an open node) holds for ``coords``."""
        if info.base is None:
            return None
        return self.index(info.ndim).lookup(info.base.root, info.base.height, coords)

    def pointer_coords(self, info: ArrayInfo, firsts: set[int] | None = None) -> set[Coords]:
        """Coordinates of the chunks with a pointer at this open node, by listing.

        ``firsts`` limits the listing to chunks with those first coordinates (one listing
        request per value, for an array of two or more dimensions); ``None`` lists them all.
        """
        prefixes = [keys.chunk_pointers_prefix(self.repo, self.uuid, info.id)]
        if firsts is not None and info.ndim >= 2:
            prefixes = [keys.chunk_pointers_slab_prefix(self.repo, self.uuid, info.id, f)
                        for f in sorted(firsts)]
        array_prefix = keys.chunk_pointers_prefix(self.repo, self.uuid, info.id)
        return {keys.chunk_pointer_coords(key, array_prefix, info.ndim)
                for prefix in prefixes for key in self.backend.list_prefix(prefix)}

    def read_blob(self, blob_digest: bytes) -> bytes:
        """The bytes named by ``blob_digest``, verified against it.

        Raises :class:`StorageError` when the blob is missing or its bytes do not match
        the digest (disk corruption, a truncated copy): wrong data is never returned.
        """
        key = keys.blob(self.repo, blob_digest.hex())
        data = read_immutable(self.backend, key)
        if data is None:
            raise StorageError(f"chunk data {blob_digest.hex()} is missing: the store is damaged")
        if digest(data) != blob_digest:
            raise StorageError(
                f"chunk data {blob_digest.hex()} is corrupt (its bytes do not match their "
                "digest): restore the store from a copy"
            )
        return data

    def store_blob(self, data: bytes) -> bytes:
        """Store ``data`` as a content-addressed blob (create-only); return its digest."""
        blob_digest = digest(data)
        self.backend.put_immutable(keys.blob(self.repo, blob_digest.hex()), data)
        return blob_digest

    def publish_chunk(self, info: ArrayInfo, coords: Coords, data: bytes | None,
                      expect: Any = UNCONDITIONAL) -> bool:
        """Point this node's chunk at ``data`` (``None``: the fill value).

        ``expect`` is the :attr:`ChunkState.token` seen (``None``: no pointer was there)
        for a conditional write, or :data:`UNCONDITIONAL`. Returns ``False`` when the
        condition failed (another writer got there first). Does not check that the node
        is open: callers wrap writes in :meth:`guarded`.
        """
        pointer = b"" if data is None else self.store_blob(data)
        return self.publish_pointer(info, coords, pointer, expect)

    def publish_pointer(self, info: ArrayInfo, coords: Coords, pointer: bytes,
                        expect: Any = UNCONDITIONAL) -> bool:
        """Write the pointer of a chunk whose blob is already stored (``b""``: fill value)."""
        key = keys.chunk_pointer(self.repo, self.uuid, info.id, coords)
        if expect is UNCONDITIONAL:
            self.backend.put(key, pointer)
            return True
        return self.backend.put_if_match(key, pointer, expect)

    def pointers(self, info: ArrayInfo) -> dict[Coords, bytes | None]:
        """This open node's chunk pointers: coordinates → digest (``None``: fill value)."""
        prefix = keys.chunk_pointers_prefix(self.repo, self.uuid, info.id)
        pointers = {}
        for key, data in self._listed(prefix):
            coords = keys.chunk_pointer_coords(key, prefix, info.ndim)
            if data is not None:
                pointers[coords] = _pointer_digest(data, key)
        return pointers

    def chunks(self, info: ArrayInfo) -> dict[Coords, bytes]:
        """Every stored (non-fill) chunk of the array: coordinates → digest."""
        found: dict[Coords, bytes] = {}
        if info.base is not None:
            found.update(self.index(info.ndim).items(info.base.root, info.base.height))
        if not self.locked:
            for coords, pointer in self.pointers(info).items():
                if pointer is not None:
                    found[coords] = pointer
                else:
                    found.pop(coords, None)
        return found

    def extents(self, info: ArrayInfo) -> Extents | None:
        """Chunk-coordinate bounding box of every chunk written along this history."""
        base = info.base.extents if info.base is not None else None
        if self.locked:
            return base
        written = [c for c, p in self.pointers(info).items() if p is not None]
        return _union(base, written)

    # -- files ------------------------------------------------------------------------------

    def files(self, include_hidden: bool = False) -> dict[str, bytes]:
        """Every file at this node: name → digest of its bytes.

        ``include_hidden`` adds the zarr objects (names starting with
        :data:`ZARR_OBJECT_PREFIX`).
        """
        found = {n: bytes.fromhex(h) for n, h in self.base.files.items()}
        if not self.locked:
            prefix = keys.file_pointers_prefix(self.repo, self.uuid)
            for key, pointer in self._listed(prefix):
                name = keys.decode_name(key[len(prefix):])
                if pointer is None:
                    continue
                file_digest = _pointer_digest(pointer, key)
                if file_digest is not None:
                    found[name] = file_digest
                else:
                    found.pop(name, None)
        if include_hidden:
            return found
        return {n: d for n, d in found.items() if not n.startswith(ZARR_OBJECT_PREFIX)}

    def find_file(self, name: str) -> bytes | None:
        """The digest of file ``name`` at this node now, or ``None``."""
        if not self.locked:
            key = keys.file_pointer(self.repo, self.uuid, name)
            pointer = self.backend.get(key)
            if pointer is not None:
                return _pointer_digest(pointer, key)
        hexd = self.base.files.get(name)
        return None if hexd is None else bytes.fromhex(hexd)

    def read_file(self, name: str) -> bytes:
        """The bytes of file ``name``; :class:`NotFoundError` if there is none."""
        file_digest = self.find_file(name)
        if file_digest is None:
            raise NotFoundError(
                f"no file named {name!r} in version {self.uuid}; list_files() shows the files"
            )
        return self.read_blob(file_digest)

    def write_file(self, name: str, data: bytes) -> None:
        """Create or replace file ``name`` at this open node."""
        def write() -> None:
            file_digest = self.store_blob(data)
            self.backend.put(keys.file_pointer(self.repo, self.uuid, name), file_digest)

        self.guarded(write)

    def delete_file(self, name: str) -> None:
        """Hide file ``name`` at this open node and its future descendants."""
        def delete() -> None:
            if self.find_file(name) is None:
                raise NotFoundError(f"no file named {name!r} in version {self.uuid}")
            self.backend.put(keys.file_pointer(self.repo, self.uuid, name), b"")

        self.guarded(delete)

    # -- locking ----------------------------------------------------------------------------

    def lock(self, message: str, prepare: Prepare | None = None) -> NodeRecord:
        """Make the node immutable forever; return its locked record.

        Steps (each crash-safe, see docs/format.md): seal the record (open → sealing) so
        no new write starts; run ``prepare``; fold pointers into new index trees and write
        the manifest (create-only, content-addressed, idempotent); swap the record to
        locked. A node left sealing by a crash is finished by the next ``lock``.

        ``prepare(arrays)`` finishes derived data (pyramids) once no write can start: it
        gets the node's arrays as the lock lists them, writes pointers directly, must be
        idempotent, and returns, by array id, the pointers it built on; those arrays are
        locked with exactly these pointers, so a write still in flight at the seal (whose
        writer gets :class:`ConflictError`) cannot slip in behind it.

        Raises
        ------
        LockedError
            The node is already locked, or another process is locking it right now.
        """
        key = keys.node_record(self.repo, self.uuid)
        record, token = self._load_versioned()
        if record.state == "locked":
            raise LockedError(f"version node {self.uuid} is already locked")
        if record.state == "open":
            sealed = record.sealed()
            if not self.backend.put_if_match(key, sealed.to_bytes(), token):
                raise LockedError(
                    f"version node {self.uuid} is being locked by another process"
                )
            record = sealed
        # The listings a lock needs are independent: on a bucket they travel together
        # (the files with the arrays, then every array's pointers) instead of one round
        # trip after another. On local disk they run one after the other.
        pool: Executor = (
            ThreadPoolExecutor(_LISTINGS_IN_FLIGHT, thread_name_prefix="diced-lock")
            if self.backend.remote else _Inline())
        with pool:
            files = pool.submit(self.files, include_hidden=True)
            arrays = self.arrays()
            frozen = prepare(arrays) if prepare is not None else {}
            todo = [info for info in arrays.values() if info.id not in frozen]
            pointers = dict(zip([info.id for info in todo], pool.map(self.pointers, todo),
                                strict=True))
            manifest = self._build_manifest(arrays, {**pointers, **frozen}, files.result())
        data = manifest.to_bytes()
        manifest_hex = digest(data).hex()
        self.backend.put_if_absent(keys.manifest(self.repo, manifest_hex), data)
        final = record.with_lock(message, manifest_hex)
        # Records are canonical JSON, so the sealed record's bytes are what is stored.
        if not self.backend.compare_and_swap(key, record.to_bytes(), final.to_bytes()):
            raise LockedError(f"version node {self.uuid} was locked by another process")
        self._switch(final, manifest)
        return final

    def _build_manifest(self, listed: Mapping[str, ArrayInfo],
                        pointers: Mapping[str, Mapping[Coords, bytes | None]],
                        files: Mapping[str, bytes]) -> Manifest:
        """The manifest of this node's locked version: each ``listed`` array's tree
        updated with its ``pointers`` (by array id), and ``files``."""
        arrays = {}
        for name, info in listed.items():
            changes = pointers[info.id]
            root, height = (info.base.root, info.base.height) if info.base else (None, 1)
            root, height = self.index(info.ndim).update(root, height, changes)
            written = [c for c, d in changes.items() if d is not None]
            base_extents = info.base.extents if info.base else None
            arrays[name] = ManifestArray(info.id, info.zarr, root, height,
                                         _union(base_extents, written))
        return Manifest(arrays=arrays, files={n: d.hex() for n, d in files.items()})


def load_manifest(backend: ObjectStore, repo: str, manifest_hex: str) -> Manifest:
    """Read the manifest of a locked node, verified against the digest that names it."""
    key = keys.manifest(repo, manifest_hex)
    data = read_immutable(backend, key)
    if data is None:
        raise StorageError(
            f"manifest {manifest_hex} of repo {repo} is missing: the store is damaged"
        )
    if digest(data).hex() != manifest_hex:
        raise corrupt("manifest", key, "its bytes do not match their digest")
    return Manifest.from_bytes(data, key)
