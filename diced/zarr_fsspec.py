"""A read-only fsspec filesystem over one version's zarr store, for readers that take paths.

Some OME-Zarr readers (ome-zarr-py, bioio) open a path or URL through fsspec rather than a
zarr store object. :class:`VersionFileSystem` presents a :class:`~diced.zarr_store.NodeStore`
as such a filesystem (protocol ``diced-version``, registered with fsspec on import), so
they read a version in-process::

    BioImage("diced-version://.ome/img", reader=bioio_ome_zarr.Reader,
             fs_kwargs={"node_store": repo.zarr_store()})
    fs = VersionFileSystem(repo.zarr_store())
    ZarrLocation(FsspecStore.from_mapper(fs.get_mapper(".ome/img"), read_only=True))

Paths are the store's keys. Directories are those the store lists (:meth:`NodeStore.list_dir`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFile
from fsspec.spec import AbstractFileSystem
from zarr.core.buffer import default_buffer_prototype

from diced.zarr_store import NodeStore

__all__ = ["PROTOCOL", "VersionFileSystem"]

PROTOCOL = "diced-version"


class VersionFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec view of ``node_store`` (read-only)."""

    protocol = PROTOCOL
    root_marker = ""

    def __init__(self, node_store: NodeStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node_store = node_store

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        return text.removeprefix(f"{PROTOCOL}://").strip("/")

    def _read(self, path: str) -> bytes | None:
        async def get() -> bytes | None:
            found = await self.node_store.get(path, default_buffer_prototype())
            return None if found is None else found.to_bytes()

        return asyncio.run(get())

    def _children(self, path: str) -> list[str]:
        async def children() -> list[str]:
            return [child async for child in self.node_store.list_dir(path)]

        found = asyncio.run(children())
        # The root group exists even when not stored (its document is computed).
        return found if path or "zarr.json" in found else ["zarr.json", *found]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        data = self._read(self._strip_protocol(path))
        if data is None:
            raise FileNotFoundError(path)
        return data[start:end]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        key = self._strip_protocol(path)
        data = self._read(key) if key else None
        if data is not None:
            return {"name": key, "size": len(data), "type": "file"}
        if not key or self._children(key):
            return {"name": key, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        key = self._strip_protocol(path)
        names = [f"{key}/{child}" if key else child for child in self._children(key)]
        if not names:
            self.info(path)  # a file lists as itself; anything else is missing
            names = [key]
        return [self.info(n) for n in names] if detail else names

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError(f"{PROTOCOL} is read-only")
        return MemoryFile(self, path, self.cat_file(path))


fsspec.register_implementation(PROTOCOL, VersionFileSystem, clobber=True)
