"""A zarr v3 :class:`~zarr.abc.store.Store` presenting the contents of one version node.

Keys follow the zarr v3 layout: ``zarr.json`` (an implicit root group), then per array
``<name>/zarr.json`` and ``<name>/c/<i>/<j>/...`` chunk keys. So
``zarr.open_array(store, path=name)``, xarray and dask read any version unchanged, and
zarr's own indexing and codecs do the array work.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from diced.errors import InvalidInputError, NotFoundError
from diced.versioning.node import UNSEEN, ArrayInfo, NodeView

__all__ = ["ChunkConflict", "NodeStore"]

_GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


class ChunkConflict(Exception):
    """Internal: a conditional chunk write lost a race; the caller retries the write."""


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start:byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset:]
    return data[len(data) - byte_range.suffix:] if byte_range.suffix else b""


class NodeStore(Store):
    """zarr Store over one node. Read-only when the node is locked.

    With ``session=True`` the store serves one read-modify-write of a
    :class:`~diced.array.DicedArray`: every chunk it reads remembers the pointer it saw,
    and a later write of that chunk is a compare-and-swap against it, raising
    :class:`ChunkConflict` if another writer changed the chunk in between. Otherwise
    writes are unconditional and each checks that the node is still open.
    """

    def __init__(self, view: NodeView, *, read_only: bool = False, session: bool = False) -> None:
        super().__init__(read_only=read_only or view.locked)
        self.view = view
        self._session = session
        self._seen: dict[str, bytes | None] = {}
        self._infos: dict[str, ArrayInfo] = {}
        self._generation = view.generation
        self._idle = threading.Condition()
        self._inflight = 0
        self._failed = False

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, NodeStore) and other.view is self.view
                and other.read_only == self.read_only and other._session == self._session)

    def __hash__(self) -> int:
        return hash((id(self.view), self.read_only))

    def __repr__(self) -> str:
        return f"NodeStore(repo={self.view.repo}, node={self.view.uuid})"

    def with_read_only(self, read_only: bool = False) -> NodeStore:
        return NodeStore(self.view, read_only=read_only)

    def abandon(self) -> None:
        """Refuse further writes of this session; return once none is in progress."""
        with self._idle:
            self._failed = True
            self._idle.wait_for(lambda: self._inflight == 0)

    def pin(self, info: ArrayInfo) -> None:
        """Serve array ``info.name`` with this identity (no metadata re-read per chunk)."""
        self._infos[info.name] = info

    def _info(self, name: str) -> ArrayInfo:
        if self._generation != self.view.generation:  # the node was locked meanwhile
            self._infos.clear()
            self._generation = self.view.generation
        info = self._infos.get(name)
        if info is None:
            info = self._infos[name] = self.view.array(name)
        return info

    # -- reads ------------------------------------------------------------------------------

    def _get_sync(self, key: str) -> bytes | None:
        if key == "zarr.json":
            return _GROUP_JSON
        name, _, rest = key.partition("/")
        if rest == "zarr.json":
            self.view.refresh()
            arrays = self.view.arrays()
            return json.dumps(dict(arrays[name].zarr)).encode() if name in arrays else None
        if not rest.startswith("c/"):
            return None
        try:
            info = self._info(name)
        except NotFoundError:
            return None
        chunk_digest, seen = self.view.chunk_digest(info, rest)
        if self._session:
            self._seen[key] = seen
        return None if chunk_digest is None else self.view.read_blob(chunk_digest)

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        # docstring inherited
        data = await asyncio.to_thread(self._get_sync, key)
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(_slice(data, byte_range))

    async def get_partial_values(self, prototype: BufferPrototype,
                                 key_ranges: Iterable[tuple[str, ByteRequest | None]]
                                 ) -> list[Buffer | None]:
        # docstring inherited
        return [await self.get(k, prototype, r) for k, r in key_ranges]

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

    def _write_chunk(self, key: str, data: bytes | None) -> None:
        name, _, rest = key.partition("/")
        info = self._info(name)
        if self._session:
            # zarr does not cancel the other chunk tasks of a batch when one fails, so after
            # a conflict this session refuses further writes, and the caller waits for the
            # tasks still writing (:meth:`abandon`) before it retries: nothing from an
            # abandoned attempt can land after the retry returns.
            with self._idle:
                if self._failed:
                    raise ChunkConflict(key)
                self._inflight += 1
            try:
                if not self.view.write_chunk(info, rest, data, self._seen.get(key, UNSEEN)):
                    self._failed = True
                    raise ChunkConflict(key)
            finally:
                with self._idle:
                    self._inflight -= 1
                    self._idle.notify_all()
        else:
            self.view.guarded(lambda: self.view.write_chunk(info, rest, data))

    def _set_sync(self, key: str, data: bytes) -> None:
        if key == "zarr.json":
            return  # the root group is implicit; its metadata cannot change
        name, _, rest = key.partition("/")
        if rest == "zarr.json":
            meta: dict[str, Any] = json.loads(data)
            if meta.get("node_type") != "array" or meta.get("zarr_format") != 3:
                raise InvalidInputError(f"{key!r}: a diced node holds only zarr v3 arrays")
            if name in self.view.arrays():
                self._infos[name] = self.view.set_array_metadata(name, meta)
            else:
                self._infos[name] = self.view.create_array(name, meta)
        elif rest.startswith("c/"):
            self._write_chunk(key, data)
        else:
            raise InvalidInputError(f"{key!r} is not a zarr.json or chunk key of a diced node")

    async def set(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        await asyncio.to_thread(self._set_sync, key, value.to_bytes())

    def _delete_sync(self, key: str) -> None:
        name, _, rest = key.partition("/")
        if rest == "zarr.json":
            self.view.delete_array(name)
            self._infos.pop(name, None)
        elif rest.startswith("c/"):
            self._write_chunk(key, None)

    async def delete(self, key: str) -> None:
        # docstring inherited
        self._check_writable()
        await asyncio.to_thread(self._delete_sync, key)

    # -- listing ----------------------------------------------------------------------------

    def _keys(self, prefix: str) -> list[str]:
        found = ["zarr.json"]
        for name, info in self.view.arrays().items():
            if not f"{name}/".startswith(prefix) and not prefix.startswith(f"{name}/"):
                continue
            found.append(f"{name}/zarr.json")
            found.extend(f"{name}/{k}" for k in self.view.chunks(info))
        return [k for k in found if k.startswith(prefix)]

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
        seen = set()
        for key in await asyncio.to_thread(self._keys, prefix):
            child = key[len(prefix):].split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child
