"""A zarr v3 :class:`~zarr.abc.store.Store` presenting the contents of one version node.

An adapter: it translates zarr's keys and delegates. Keys follow the zarr v3 layout:

* ``zarr.json``: the root group (implicit: a default group document unless one was
  stored);
* ``<array>/zarr.json``: an array's metadata; ``<array>/<chunk key>``: its chunks, in the
  array's own chunk key encoding (``c/0/1/2``, ``c.0.1.2``, ``0.1.2``...). This module is
  the only place that parses zarr chunk keys: each is checked against the array's
  encoding and storage grid (the shard grid of a sharded array) and becomes a coordinate
  tuple for :class:`~diced.chunk_access.ChunkAccess`. A key with the wrong number of
  coordinates, or outside the grid, names no chunk: reads find nothing, writes are refused;
* any other key (a group's ``zarr.json``, attributes, anything a zarr tool stores) is a
  plain object of the version, stored like a file in a reserved namespace, so every zarr
  hierarchy round-trips;
* derived, read-only objects (:mod:`diced.zarr_views`): the root ``zarr.json`` carries the
  version's metadata consolidated, array documents carry ``dimension_names``, and
  ``.ome/<array>/`` is an OME-NGFF image group over each array and its pyramid.

Chunk writes made by zarr arrays go through :mod:`diced.zarr_pipeline`, whose
read-merge-write of a partial chunk is conditional and retried: no update is lost. A
direct :meth:`NodeStore.set` of a chunk key replaces the whole chunk. Read-only when the
node is locked.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
from zarr.core.metadata import ArrayV3Metadata

from diced import zarr_pipeline, zarr_views
from diced.chunk_access import ChunkAccess, metadata_of, slice_bytes
from diced.context import NodeAddress, StoreContext
from diced.errors import InvalidInputError, ReadOnlyStoreError, StorageError
from diced.versioning.node import ZARR_OBJECT_PREFIX, ArrayInfo, NodeView

__all__ = ["ARRAY_NAME", "NodeStore", "check_array_metadata", "parse_chunk_key"]

Coords = tuple[int, ...]

#: Names of diced arrays: the first segment of their zarr keys.
ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_INT = re.compile(r"^(0|[1-9][0-9]{0,18})$")


def parse_chunk_key(meta: ArrayV3Metadata, key: str) -> Coords | None:
    """Storage-grid coordinates of chunk key ``key`` of the array ``meta`` describes.

    ``None`` unless ``key`` is exactly what the array's chunk key encoding makes of some
    chunk inside its grid (no aliasing: one chunk, one key).
    """
    encoding = meta.chunk_key_encoding
    sep = getattr(encoding, "separator", "/")
    ndim = len(meta.shape)
    if isinstance(encoding, DefaultChunkKeyEncoding):
        if key == "c":
            parts: list[str] = []
        elif key.startswith("c" + sep):
            parts = key[2:].split(sep)
        else:
            return None
    else:
        parts = [] if (key == "0" and ndim == 0) else key.split(sep)
    if len(parts) != ndim or not all(_INT.match(p) for p in parts):
        return None
    coords = tuple(int(p) for p in parts)
    grid = tuple(meta.chunk_grid.chunk_shape)  # type: ignore[attr-defined]
    if any(c * n >= s for c, n, s in zip(coords, grid, meta.shape, strict=True)):
        return None
    if meta.encode_chunk_key(coords) != key:
        return None
    return coords


def check_array_metadata(doc: Any) -> ArrayV3Metadata:
    """zarr v3 array metadata diced can store, parsed; :class:`InvalidInputError` if not."""
    try:
        meta = ArrayV3Metadata.from_dict(dict(doc))
    except Exception as exc:
        raise InvalidInputError(f"not valid zarr v3 array metadata: {exc}") from exc
    if type(meta.chunk_grid).__name__ != "RegularChunkGrid":
        raise InvalidInputError("diced stores arrays with a regular chunk grid only")
    return meta


class NodeStore(Store):
    """zarr Store over one node of one repo. Read-only when the node is locked.

    Parameters
    ----------
    ctx
        The open store's shared resources.
    view
        The node.
    read_only
        Refuse writes even at an open node.
    """

    def __init__(self, ctx: StoreContext, view: NodeView, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only or view.locked)
        self.ctx = ctx
        self.view = view
        self._pinned: dict[str, ArrayInfo] = {}
        self._generation = view.generation

    @property
    def address(self) -> NodeAddress:
        return self.ctx.address(self.view.repo, self.view.uuid, self.read_only)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeStore) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"NodeStore(repo={self.view.repo}, node={self.view.uuid})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as an address; unpickling reopens the store (see diced.context).
        return (self.ctx.reopen_node_store, (self.address,))

    def _check_writable(self) -> None:
        if self.read_only:
            state = "a locked version" if self.view.locked else "opened read-only"
            raise ReadOnlyStoreError(
                f"store was opened in read-only mode and does not support writing: version "
                f"{self.view.uuid} is {state}; create a branch (create_branch) and write there"
            )

    def with_read_only(self, read_only: bool = False) -> NodeStore:
        # docstring inherited
        return NodeStore(self.ctx, self.view, read_only=read_only)

    # -- arrays and keys --------------------------------------------------------------------

    def pin(self, info: ArrayInfo) -> None:
        """Serve array ``info.name`` as this identity (an array handle's own zarr array).

        Writes through this store to that name then fail if the array has been deleted
        or replaced since, instead of landing in a new array of the same name.
        """
        self._pinned[info.name] = info

    def _array(self, name: str) -> ArrayInfo | None:
        """The array ``name`` as this store serves it (pinned when first served)."""
        if not ARRAY_NAME.match(name):
            return None
        if self._generation != self.view.generation:  # the node was locked meanwhile
            self._pinned.clear()
            self._generation = self.view.generation
        info = self._pinned.get(name)
        if info is None:
            info = self.view.find_array(name)
            if info is not None:
                self._pinned[name] = info
        return info

    def _access(self, info: ArrayInfo) -> ChunkAccess:
        return ChunkAccess(self.view, info, metadata_of(info), self.ctx.io_pool)

    def chunk_target(self, key: str) -> tuple[ChunkAccess, Coords] | None:
        """The chunk access and coordinates behind chunk key ``key`` (used by the pipeline).

        Raises :class:`InvalidInputError` for a key inside an array that names no chunk.
        """
        name, sep, rest = key.partition("/")
        info = self._array(name) if sep else None
        if info is None or rest == "zarr.json":
            return None
        access = self._access(info)
        coords = parse_chunk_key(access.meta, rest)
        if coords is None:
            raise InvalidInputError(
                f"{key!r} is not a chunk key of array {name!r} (shape {tuple(access.meta.shape)}, "
                f"storage grid {access.grid}, chunk key encoding "
                f"{access.meta.chunk_key_encoding.to_dict()})"
            )
        return access, coords

    @staticmethod
    def _object_name(key: str) -> str:
        return ZARR_OBJECT_PREFIX + key

    # -- reads ------------------------------------------------------------------------------

    def _stored_object(self, key: str) -> bytes | None:
        found = self.view.find_file(self._object_name(key))
        return None if found is None else self.view.read_blob(found)

    def _derived(self, key: str) -> bytes | None:
        """A computed object (root group, ``.ome/`` view; see :mod:`diced.zarr_views`)."""
        self.view.refresh()
        if key == "zarr.json":
            arrays = self.view.arrays()
            groups = {}
            for file_name in self.view.files(include_hidden=True):
                stored = file_name[len(ZARR_OBJECT_PREFIX):]
                path = stored.removesuffix("/zarr.json")
                if file_name.startswith(ZARR_OBJECT_PREFIX) and path != stored \
                        and path.partition("/")[0] not in arrays:
                    data = self._stored_object(stored)
                    if data is not None:
                        groups[path] = data
            return zarr_views.root_document(self._stored_object(key), arrays, groups)
        if key.count("/") <= 2 and key.endswith("/zarr.json"):
            return zarr_views.ome_object(key, self.view.arrays())
        target = zarr_views.ome_level_key(key, self._array)
        return None if target is None else self._get_sync(target)

    def _get_sync(self, key: str) -> bytes | None:
        if key == "zarr.json" or key.startswith(zarr_views.OME_PREFIX + "/"):
            return self._derived(key)
        name, sep, rest = key.partition("/")
        if sep and rest == "zarr.json":
            self.view.refresh()
        info = self._array(name) if sep else None
        if info is not None:
            if rest == "zarr.json":
                return json.dumps(zarr_views.array_document(info.zarr)).encode()
            access = self._access(info)
            coords = parse_chunk_key(access.meta, rest)
            return None if coords is None else access.read(coords)
        return self._stored_object(key)

    def get_sync(self, key: str, *, prototype: BufferPrototype | None = None,
                 byte_range: ByteRequest | None = None) -> Buffer | None:
        """:meth:`get` without an event loop (zarr's ``SupportsGetSync``)."""
        if byte_range is not None and not isinstance(
                byte_range, RangeByteRequest | OffsetByteRequest | SuffixByteRequest):
            raise TypeError(f"Unexpected byte_range, got {byte_range!r}")
        data = self._get_sync(key)
        if data is None:
            return None
        buffer = (prototype or default_buffer_prototype()).buffer
        return buffer.from_bytes(slice_bytes(data, byte_range))

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        # docstring inherited
        return await asyncio.to_thread(self.get_sync, key, prototype=prototype,
                                       byte_range=byte_range)

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]
                                 ) -> list[Buffer | None]:
        # docstring inherited
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        # docstring inherited
        return await asyncio.to_thread(self._get_sync, key) is not None

    # -- writes -----------------------------------------------------------------------------

    @property
    def supports_writes(self) -> bool:
        return True

    @property
    def supports_deletes(self) -> bool:
        return True

    @property
    def supports_listing(self) -> bool:
        return True

    def _set_array_metadata(self, name: str, doc: dict[str, Any]) -> None:
        meta = check_array_metadata(doc)
        normalised = json.loads(meta.to_buffer_dict(default_buffer_prototype())["zarr.json"]
                                .to_bytes())
        current = self.view.find_array(name)
        if current is not None and _same_layout(current.zarr, normalised):
            # A resize or an attribute update: same chunks, new shape or attributes.
            self._pinned[name] = self.view.set_array_metadata(name, normalised, current.id)
        else:
            # New, or a different layout: a new identity, so no old chunk is ever decoded
            # with codecs or a grid it was not written with.
            self._pinned[name] = self.view.replace_array(name, normalised)

    def _set_sync(self, key: str, data: bytes) -> None:
        _check_not_derived(key)
        if key == "zarr.json":
            data = _without_consolidated(data)  # computed on every read instead
        name, sep, rest = key.partition("/")
        info = self._array(name) if sep else None
        if sep and rest == "zarr.json" and ARRAY_NAME.match(name):
            doc = _json_object(data)
            if doc is not None and doc.get("node_type") == "array":
                self._set_array_metadata(name, doc)
                return
            if info is not None:
                raise InvalidInputError(
                    f"{key!r} holds the metadata of array {name!r}; write zarr v3 array "
                    "metadata there, or delete the array first"
                )
        elif info is None and doc_is_array(key, data):
            raise InvalidInputError(
                f"cannot create an array at {key.removesuffix('/zarr.json')!r}: diced arrays "
                "live at the top level of a version, named with letters, digits, '_', '.' "
                "and '-'"
            )
        if info is not None:
            target = self.chunk_target(key)
            assert target is not None
            if not zarr_pipeline.installed():
                raise StorageError(
                    "zarr's codec_pipeline.path was changed from diced's "
                    f"({zarr_pipeline.PIPELINE_PATH}); diced refuses chunk writes through "
                    "another pipeline, which could lose concurrent updates"
                )
            access, coords = target
            access.guarded(lambda: access.write(coords, data))
            return
        self.view.write_file(self._object_name(key), data)

    def set_sync(self, key: str, value: Buffer) -> None:
        """:meth:`set` without an event loop (zarr's ``SupportsSetSync``)."""
        self._check_writable()
        self._set_sync(key, value.to_bytes())

    async def set(self, key: str, value: Buffer) -> None:
        # docstring inherited
        await asyncio.to_thread(self.set_sync, key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()

        def set_new() -> None:
            if self._get_sync(key) is None:
                self._set_sync(key, value.to_bytes())

        await asyncio.to_thread(set_new)

    def _delete_sync(self, key: str) -> None:
        _check_not_derived(key)
        name, sep, rest = key.partition("/")
        info = self._array(name) if sep else None
        if info is not None:
            if rest == "zarr.json":
                self.view.delete_array(name)
                self._pinned.pop(name, None)
                return
            access = self._access(info)
            coords = parse_chunk_key(access.meta, rest)
            if coords is not None:
                access.guarded(lambda: access.write(coords, None))
            return
        if self.view.find_file(self._object_name(key)) is not None:
            self.view.delete_file(self._object_name(key))

    def delete_sync(self, key: str) -> None:
        """:meth:`delete` without an event loop (zarr's ``SupportsDeleteSync``)."""
        self._check_writable()
        self._delete_sync(key)

    async def delete(self, key: str) -> None:
        # docstring inherited
        await asyncio.to_thread(self.delete_sync, key)

    def _delete_dir_sync(self, prefix: str) -> None:
        prefix = prefix.rstrip("/")
        if "/" not in prefix and self._array(prefix) is not None:
            self.view.delete_array(prefix)  # O(1), however many chunks it has
            self._pinned.pop(prefix, None)
            return
        for key in self._keys(prefix + "/" if prefix else ""):
            self._delete_sync(key)

    async def delete_dir(self, prefix: str) -> None:
        # docstring inherited
        self._check_writable()
        await asyncio.to_thread(self._delete_dir_sync, prefix)

    # -- listing ----------------------------------------------------------------------------

    def _keys(self, prefix: str) -> list[str]:
        self.view.refresh()
        found = []
        arrays = self.view.arrays()
        for name, info in arrays.items():
            if not f"{name}/".startswith(prefix) and not prefix.startswith(f"{name}/"):
                continue
            meta = metadata_of(info)
            found.append(f"{name}/zarr.json")
            found.extend(f"{name}/{meta.encode_chunk_key(c)}" for c in self.view.chunks(info))
        for file_name in self.view.files(include_hidden=True):
            if file_name.startswith(ZARR_OBJECT_PREFIX):
                key = file_name[len(ZARR_OBJECT_PREFIX):]
                if key.partition("/")[0] not in arrays:  # shadowed by an array of that name
                    found.append(key)
        return sorted(k for k in found if k.startswith(prefix))

    async def list(self) -> AsyncIterator[str]:
        # docstring inherited
        for key in await asyncio.to_thread(self._keys, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        for key in await asyncio.to_thread(self._keys, prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        if prefix.startswith(zarr_views.OME_PREFIX + "/"):
            for child in await asyncio.to_thread(_ome_children, self.view, prefix):
                yield child
            return
        seen = set()
        if not prefix:
            ome_view: list[str] = await asyncio.to_thread(_ome_children, self.view,
                                                          zarr_views.OME_PREFIX + "/")
            if ome_view:
                seen.add(zarr_views.OME_PREFIX)
                yield zarr_views.OME_PREFIX
        for key in await asyncio.to_thread(self._keys, prefix):
            child = key[len(prefix):].split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child

    async def getsize(self, key: str) -> int:
        # docstring inherited
        data = await asyncio.to_thread(self._get_sync, key)
        if data is None:
            raise FileNotFoundError(key)
        return len(data)


def _ome_children(view: NodeView, prefix: str) -> list[str]:
    """Children of a directory of the ``.ome/`` view (``prefix`` ends with ``/``)."""
    view.refresh()
    arrays = view.arrays()
    parts = prefix.rstrip("/").split("/")
    names = zarr_views.ome_names(arrays)
    if len(parts) == 1:
        return ["zarr.json", *names] if names else []
    if len(parts) == 2 and parts[1] in names:
        group = json.loads(zarr_views.ome_object(f"{prefix}zarr.json", arrays) or b"{}")
        return ["zarr.json", *group["consolidated_metadata"]["metadata"]]
    return []


def _check_not_derived(key: str) -> None:
    if key.startswith(zarr_views.OME_PREFIX + "/"):
        raise InvalidInputError(
            f"{key!r} is in the OME-NGFF view of the version ({zarr_views.OME_PREFIX}/), which "
            "is computed from its arrays and read-only: write the array itself"
        )


def _without_consolidated(data: bytes) -> bytes:
    doc = _json_object(data)
    if doc is None or "consolidated_metadata" not in doc:
        return data
    return json.dumps({k: v for k, v in doc.items() if k != "consolidated_metadata"}).encode()


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def doc_is_array(key: str, data: bytes) -> bool:
    """Whether ``data`` stored at ``key`` would be a zarr array's metadata document."""
    if not key.endswith("zarr.json"):
        return False
    doc = _json_object(data)
    return doc is not None and doc.get("node_type") == "array"


_LAYOUT = ("data_type", "chunk_grid", "chunk_key_encoding", "codecs", "fill_value",
           "zarr_format", "node_type", "storage_transformers")


def _same_layout(a: Any, b: Any) -> bool:
    """Whether two array documents store chunks alike (they may differ in shape, attributes)."""
    return all(a.get(k) == b.get(k) for k in _LAYOUT) and len(a["shape"]) == len(b["shape"])
