"""Contents of one version node: arrays, chunks and files, read and written safely.

A *locked* node is fully described by its immutable manifest (array entries plus one
chunk-index tree per array, and a file table). An *open* node is its parent's manifest
(the *base*) overlaid with small mutable objects of its own: one array entry per array
created, changed or deleted, one pointer per chunk written, one pointer per file written.
Pointers hold the digest of immutable, content-addressed bytes (or nothing, for a chunk
equal to the fill value or a deleted file), so:

* a chunk write is one create-only blob write plus one pointer write, each atomic;
* a partial-chunk write is made safe by compare-and-swap of the pointer (content
  comparison is ABA-safe because equal pointers mean equal chunk bytes);
* locking reads the pointers once, folds them into the parent's index trees (copy on
  write), writes a manifest, and flips the node record. Later stray pointer writes can
  never change what the locked node reads, because it reads only its manifest.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Mapping
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
from diced.versioning.digest import digest
from diced.versioning.records import ArrayEntry, Manifest, ManifestArray, NodeRecord

__all__ = ["UNSEEN", "ArrayInfo", "NodeView", "chunk_coords"]

T = TypeVar("T")
Extents = tuple[tuple[int, int], ...]

#: ``expected`` value for :meth:`NodeView.write_chunk` meaning "write unconditionally".
UNSEEN: Any = object()
_RETRIES = 1000


def chunk_coords(chunk_key: str) -> tuple[int, ...]:
    """Chunk coordinates from a zarr v3 default chunk key such as ``c/0/1/2``."""
    return tuple(int(p) for p in chunk_key.split("/")[1:])


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


def _union(a: Extents | None, coords: list[tuple[int, ...]]) -> Extents | None:
    bounds = [list(e) for e in a] if a is not None else None
    for c in coords:
        if bounds is None:
            bounds = [[x, x + 1] for x in c]
        else:
            for b, x in zip(bounds, c, strict=True):
                b[0], b[1] = min(b[0], x), max(b[1], x + 1)
    return None if bounds is None else tuple((lo, hi) for lo, hi in bounds)


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
        #: Bumped when the view switches from open to locked (see :meth:`refresh`); array
        #: handles compare it to know their :class:`ArrayInfo` must be re-read.
        self.generation = 0

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
        if self.record.locked:
            return
        record, _ = self._load_record()
        if record.locked and record.manifest is not None:
            self._switch(record, load_manifest(self.backend, self.repo, record.manifest))

    def _switch(self, record: NodeRecord, manifest: Manifest) -> None:
        self.record, self.base = record, manifest
        self.generation += 1

    def index(self, ndim: int) -> ChunkIndex:
        if ndim not in self._indexes:
            self._indexes[ndim] = ChunkIndex(self.backend, self.repo, ndim, self.cache)
        return self._indexes[ndim]

    # -- node state -------------------------------------------------------------------------

    def _load_record(self) -> tuple[NodeRecord, bytes]:
        data = self.backend.get(keys.node_record(self.repo, self.uuid))
        if data is None:
            raise NotFoundError(f"version node {self.uuid} no longer exists")
        return NodeRecord.from_bytes(data), data

    def check_open(self) -> None:
        """Raise :class:`LockedError` unless the node (as stored now) accepts writes."""
        record, _ = self._load_record()
        if record.state != "open":
            raise LockedError(
                f"version node {self.uuid} is locked and can never change; create a branch "
                "with create_branch(message) and write there"
            )

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
        result = write()
        record, _ = self._load_record()
        if record.state != "open":
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
        for key in self.backend.list_prefix(prefix):
            data = self.backend.get(key)
            if data is not None:
                entries[key[len(prefix):]] = ArrayEntry.from_bytes(data)
        return entries

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

    def array(self, name: str) -> ArrayInfo:
        """The array ``name`` at this node; :class:`NotFoundError` if there is none."""
        entry = None
        if not self.locked:
            data = self.backend.get(keys.array_entry(self.repo, self.uuid, name))
            entry = None if data is None else ArrayEntry.from_bytes(data)
        info = self._info(name, entry)
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
        for _ in range(_RETRIES):
            raw = self.backend.get(key)
            entry = None if raw is None else ArrayEntry.from_bytes(raw)
            new = make(entry, self._info(name, entry))
            if raw is None:
                if self.backend.put_if_absent(key, new.to_bytes()):
                    return new
            elif self.backend.compare_and_swap(key, raw, new.to_bytes()):
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

    def set_array_metadata(self, name: str, zarr_meta: Mapping[str, Any]) -> ArrayInfo:
        """Replace the zarr metadata of an existing array (e.g. after a resize)."""
        def make(entry: ArrayEntry | None, info: ArrayInfo | None) -> ArrayEntry:
            if info is None:
                raise NotFoundError(f"no array named {name!r} in version {self.uuid}")
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

    def chunk_digest(self, info: ArrayInfo, chunk_key: str) -> tuple[bytes | None, bytes | None]:
        """``(digest or None, pointer seen)`` of one chunk.

        The pointer seen (``None`` if this node has none) is what a later
        :meth:`write_chunk` must expect for a conflict-free read-modify-write.
        """
        if not self.locked:
            pointer = self.backend.get(keys.chunk_pointer(self.repo, self.uuid, info.id, chunk_key))
            if pointer is not None:
                return (pointer or None), pointer
        if info.base is None:
            return None, None
        found = self.index(info.ndim).lookup(info.base.root, info.base.height,
                                             chunk_coords(chunk_key))
        return found, None

    def read_blob(self, blob_digest: bytes) -> bytes:
        """The bytes named by ``blob_digest``, verified against it.

        Raises :class:`StorageError` when the blob is missing or its bytes do not match
        the digest (disk corruption, a truncated copy): wrong data is never returned.
        """
        data = self.backend.get(keys.blob(self.repo, blob_digest.hex()))
        if data is None:
            raise StorageError(f"chunk data {blob_digest.hex()} is missing: the store is damaged")
        if digest(data) != blob_digest:
            raise StorageError(
                f"chunk data {blob_digest.hex()} is corrupt (its bytes do not match their "
                "digest): restore the store from a copy"
            )
        return data

    def write_chunk(self, info: ArrayInfo, chunk_key: str, data: bytes | None,
                    expected: Any = UNSEEN) -> bool:
        """Point this node's chunk at ``data`` (``None``: the fill value).

        ``expected`` is the pointer seen by :meth:`chunk_digest` (``None``: none seen) for
        a conditional write, or :data:`UNSEEN` for an unconditional one. Returns ``False``
        when the condition failed (another writer got there first). Does not check that
        the node is open; callers wrap writes in :meth:`guarded`.
        """
        if data is None:
            pointer = b""
        else:
            pointer = digest(data)
            self.backend.put_if_absent(keys.blob(self.repo, pointer.hex()), data)
        key = keys.chunk_pointer(self.repo, self.uuid, info.id, chunk_key)
        if expected is UNSEEN:
            self.backend.put(key, pointer)
            return True
        if expected is None:
            return self.backend.put_if_absent(key, pointer)
        return self.backend.compare_and_swap(key, expected, pointer)

    def chunks(self, info: ArrayInfo) -> dict[str, bytes]:
        """Every stored (non-fill) chunk of the array: chunk key → digest."""
        found: dict[str, bytes] = {}
        if info.base is not None:
            for coords, d in self.index(info.ndim).items(info.base.root, info.base.height):
                found["c/" + "/".join(map(str, coords))] = d
        if not self.locked:
            for chunk_key, pointer in self._pointers(info).items():
                if pointer:
                    found[chunk_key] = pointer
                else:
                    found.pop(chunk_key, None)
        return found

    def _pointers(self, info: ArrayInfo) -> dict[str, bytes]:
        prefix = keys.chunk_pointers_prefix(self.repo, self.uuid, info.id)
        pointers = {}
        for key in self.backend.list_prefix(prefix):
            pointer = self.backend.get(key)
            if pointer is not None:
                pointers[key[len(prefix):]] = pointer
        return pointers

    def extents(self, info: ArrayInfo) -> Extents | None:
        """Chunk-coordinate bounding box of every chunk written along this history."""
        base = info.base.extents if info.base is not None else None
        if self.locked:
            return base
        written = [chunk_coords(k) for k, p in self._pointers(info).items() if p]
        return _union(base, written)

    # -- files ------------------------------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """Every file at this node: name → digest of its bytes."""
        found = {n: bytes.fromhex(h) for n, h in self.base.files.items()}
        if not self.locked:
            prefix = keys.file_pointers_prefix(self.repo, self.uuid)
            for key in self.backend.list_prefix(prefix):
                pointer = self.backend.get(key)
                name = keys.decode_name(key[len(prefix):])
                if pointer:
                    found[name] = pointer
                elif pointer is not None:
                    found.pop(name, None)
        return found

    def read_file(self, name: str) -> bytes:
        """The bytes of file ``name``; :class:`NotFoundError` if there is none."""
        file_digest: bytes | None
        pointer = None
        if not self.locked:
            pointer = self.backend.get(keys.file_pointer(self.repo, self.uuid, name))
        if pointer is not None:
            file_digest = pointer or None
        else:
            hexd = self.base.files.get(name)
            file_digest = None if hexd is None else bytes.fromhex(hexd)
        if file_digest is None:
            raise NotFoundError(
                f"no file named {name!r} in version {self.uuid}; list_files() shows the files"
            )
        return self.read_blob(file_digest)

    def write_file(self, name: str, data: bytes) -> None:
        """Create or replace file ``name`` at this open node."""
        def write() -> None:
            d = digest(data)
            self.backend.put_if_absent(keys.blob(self.repo, d.hex()), data)
            self.backend.put(keys.file_pointer(self.repo, self.uuid, name), d)

        self.guarded(write)

    def delete_file(self, name: str) -> None:
        """Hide file ``name`` at this open node and its future descendants."""
        def delete() -> None:
            if name not in self.files():
                raise NotFoundError(f"no file named {name!r} in version {self.uuid}")
            self.backend.put(keys.file_pointer(self.repo, self.uuid, name), b"")

        self.guarded(delete)

    # -- locking ----------------------------------------------------------------------------

    def lock(self, message: str) -> NodeRecord:
        """Make the node immutable forever; return its locked record.

        Steps (each crash-safe, see docs/format.md): seal the record (open → sealing) so
        no new write starts; fold pointers into new index trees and write the manifest
        (create-only, content-addressed, idempotent); swap the record to locked. A node
        left sealing by a crash is finished by the next ``lock``.

        Raises
        ------
        LockedError
            The node is already locked, or another process is locking it right now.
        """
        record, raw = self._load_record()
        if record.state == "locked":
            raise LockedError(f"version node {self.uuid} is already locked")
        if record.state == "open":
            sealed = record.sealed()
            if not self.backend.compare_and_swap(keys.node_record(self.repo, self.uuid), raw,
                                                 sealed.to_bytes()):
                raise LockedError(
                    f"version node {self.uuid} is being locked by another process"
                )
            record, raw = sealed, sealed.to_bytes()
        manifest = self._build_manifest()
        data = manifest.to_bytes()
        manifest_hex = digest(data).hex()
        self.backend.put_if_absent(keys.manifest(self.repo, manifest_hex), data)
        final = record.with_lock(message, manifest_hex)
        if not self.backend.compare_and_swap(keys.node_record(self.repo, self.uuid), raw,
                                             final.to_bytes()):
            raise LockedError(f"version node {self.uuid} was locked by another process")
        self._switch(final, manifest)
        return final

    def _build_manifest(self) -> Manifest:
        arrays = {}
        for name, info in self.arrays().items():
            changes: dict[tuple[int, ...], bytes | None] = {
                chunk_coords(k): (p or None) for k, p in self._pointers(info).items()
            }
            root, height = (info.base.root, info.base.height) if info.base else (None, 1)
            root, height = self.index(info.ndim).update(root, height, changes)
            written = [c for c, d in changes.items() if d is not None]
            base_extents = info.base.extents if info.base else None
            arrays[name] = ManifestArray(info.id, info.zarr, root, height,
                                         _union(base_extents, written))
        files = {n: d.hex() for n, d in self.files().items()}
        return Manifest(arrays=arrays, files=files)


def load_manifest(backend: ObjectStore, repo: str, manifest_hex: str) -> Manifest:
    """Read the manifest of a locked node."""
    data = backend.get(keys.manifest(repo, manifest_hex))
    if data is None:
        raise StorageError(
            f"manifest {manifest_hex} of repo {repo} is missing: the store is damaged"
        )
    return Manifest.from_bytes(data)

