"""What the API layer needs from an open store, without the store itself.

:class:`~diced.DicedStore` builds one :class:`StoreContext` and hands it to every repo,
array and zarr Store it opens. They reach the backend, the index-page cache and the I/O
pool through it, and pickle themselves as addresses (:class:`NodeAddress`,
:class:`ArrayAddress`) that the store module reopens where they are unpickled, typically
on a Dask worker. So the modules below the store never import it, and imports flow one
way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from diced.backends import ObjectStore
from diced.versioning.chunkindex import PageCache

__all__ = ["ArrayAddress", "NodeAddress", "StoreContext"]


@dataclass(frozen=True)
class NodeAddress:
    """Everything needed to reopen one version node of one repo, in any process.

    ``location`` is absolute for local paths, so the address does not depend on the
    current directory; ``options`` are :class:`~diced.DicedStore` keyword arguments. The
    other process must reach the same location (a bucket, or a shared filesystem); a
    ``memory://`` store exists in one process only.
    """

    location: str
    options: tuple[tuple[str, Any], ...]
    repo: str
    node: str
    readonly: bool


@dataclass(frozen=True)
class ArrayAddress:
    """One array handle: its node's address and the array's name."""

    node: NodeAddress
    name: str


@dataclass(frozen=True)
class StoreContext:
    """The shared resources of one open store.

    ``reopen_array`` and ``reopen_node_store`` are module-level functions of the store
    module, so they pickle by reference: a pickled handle names the function that
    reopens it without this layer importing that module.
    """

    backend: ObjectStore
    page_cache: PageCache
    io_pool: ThreadPoolExecutor
    location: str
    options: Mapping[str, Any]
    reopen_array: Callable[[ArrayAddress], Any]
    reopen_node_store: Callable[[NodeAddress], Any]

    def address(self, repo: str, node: str, readonly: bool) -> NodeAddress:
        """The address of ``node`` of ``repo`` in this store."""
        location = self.location
        if "://" not in location:
            location = os.path.abspath(os.path.expanduser(location))
        return NodeAddress(location, tuple(sorted(self.options.items())), repo, node, readonly)
