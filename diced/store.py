"""``DicedStore``: the entry point, one store of many repos at a path or URL."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

from diced.backends import ObjectStore, open_backend
from diced.errors import InvalidInputError
from diced.repo import DicedRepo
from diced.versioning.catalog import RepoCatalog
from diced.versioning.chunkindex import PageCache
from diced.versioning.graph import DEFAULT_BRANCH, VersionGraph

__all__ = ["DicedStore"]


class DicedStore:
    """A diced store: many repos at one location.

    Parameters
    ----------
    location
        A local directory (``~`` expanded; created if missing, its parent must exist),
        ``file://...`` or ``memory://name`` (in-process, for tests and scratch work).
    port
        Reserved for the built-in web viewer (DICED started it here); it is not part of
        this release, so any value other than ``None`` raises.
    permissionfile
        Google service-account key for ``gs://`` locations; not accepted for local ones.
    fsync
        Flush every object to stable storage before it is published (survives power loss,
        at some write speed).

    The store is a context manager; :meth:`close` releases it.

    Raises
    ------
    NotFoundError
        The location's parent directory does not exist.
    FormatVersionError
        The store was written by a newer diced.
    InvalidInputError
        The location is not a diced store, or an argument does not apply.
    """

    def __init__(self, location: str, port: int | None = None,
                 permissionfile: str | None = None, *, fsync: bool = False) -> None:
        if not isinstance(location, str) or not location:
            raise InvalidInputError(f"a store location must be a path or URL, not {location!r}")
        if port is not None:
            raise InvalidInputError(
                "the web viewer (port=...) is not available in this diced release; "
                "open the store without port"
            )
        if permissionfile is not None and not location.startswith("gs://"):
            raise InvalidInputError("permissionfile applies only to gs:// locations")
        self.location = location
        self.backend: ObjectStore = open_backend(location, fsync=fsync)
        self.catalog = RepoCatalog(self.backend, location)
        #: Decoded chunk-index pages shared by every repo of this store (immutable).
        self.page_cache = PageCache()
        #: Threads that fetch, decode and encode chunks; codecs and I/O release the GIL,
        #: so a few threads per core overlap storage latency with compression.
        self.io_pool = ThreadPoolExecutor(max_workers=4 * (os.cpu_count() or 1),
                                          thread_name_prefix="diced-io")

    def __repr__(self) -> str:
        return f"DicedStore({self.location!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's resources. Data is already durable; nothing is flushed."""
        self.io_pool.shutdown(wait=True)
        self.backend.close()

    def create_repo(self, name: str, description: str = "") -> DicedRepo:
        """Create repo ``name`` and return it, positioned at its open root node.

        Raises :class:`AlreadyExistsError` if the name is taken.
        """
        record = self.catalog.create(name, description)
        return DicedRepo(self, record, record.root)

    def list_repos(self) -> list[tuple[str, str]]:
        """``[(name, root node UUID), ...]`` sorted by name (DICED's shape)."""
        return [(r.name, r.root) for r in self.catalog.list()]

    def get_repouuid(self, name: str) -> str:
        """The root node UUID of repo ``name`` (what DICED called the repo UUID)."""
        return self.catalog.by_name(name).root

    def open_repo(self, name: str | None = None, uuid: str | None = None,
                  readonly: bool = False) -> DicedRepo:
        """Open a repo by ``name`` or by a version ``uuid``.

        By name, the repo opens at the newest node of its ``master`` branch (its leaf),
        not at the root as DICED did. By ``uuid`` (full or unique prefix, any repo of the
        store), it opens at that node; ``uuid`` wins when both are given. ``readonly``
        handles refuse every write.

        Raises
        ------
        NotFoundError
            No such repo or node.
        InvalidInputError
            Neither name nor uuid was given, or the prefix is ambiguous.
        """
        if uuid is not None:
            record, node = self.catalog.find_node(uuid)
            if name is not None and record.name != name:
                raise InvalidInputError(f"version {uuid!r} belongs to repo {record.name!r}, "
                                        f"not {name!r}")
            return DicedRepo(self, record, node, readonly=readonly)
        if name is None:
            raise InvalidInputError("open_repo needs a repo name or a version uuid")
        record = self.catalog.by_name(name)
        leaf = VersionGraph(self.backend, record.uuid).branch_leaf(DEFAULT_BRANCH)
        return DicedRepo(self, record, leaf, readonly=readonly)

    def delete_repo(self, name: str) -> None:
        """Delete repo ``name`` with all its versions (irreversible)."""
        self.catalog.delete(name)
