"""Reopening array handles in another process: what a pickled :class:`DicedArray` holds.

A handle cannot travel between processes (it holds open backends and thread pools), so it
pickles as an :class:`ArrayAddress` and is reopened where it is unpickled, typically on a
Dask worker. The worker must reach the same store location (a bucket, or a path on a
shared filesystem) with the same options.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diced.array import DicedArray
    from diced.store import DicedStore

__all__ = ["ArrayAddress", "reopen_array"]


@dataclass(frozen=True)
class ArrayAddress:
    """Everything needed to reopen one array handle at one version node, anywhere.

    ``location`` is absolute for local paths, so the address does not depend on the
    current directory; ``options`` are :class:`DicedStore` keyword arguments.
    """

    location: str
    options: tuple[tuple[str, Any], ...]
    repo: str
    node: str
    name: str
    readonly: bool

    @classmethod
    def of(cls, store: DicedStore, repo: str, node: str, name: str,
           readonly: bool) -> ArrayAddress:
        location = store.location
        if "://" not in location:
            location = os.path.abspath(os.path.expanduser(location))
        return cls(location, tuple(sorted(store.options.items())), repo, node, name, readonly)


# One store per location, options and process, opened on first use and kept for the
# process's lifetime: unpickling many handles (one per Dask task, say) then shares one
# store's connections, thread pool and index-page cache instead of opening a store each.
# The process id is part of the key because a forked child cannot use its parent's threads.
_stores: dict[tuple[int, str, str], DicedStore] = {}
_stores_lock = threading.Lock()


def _shared_store(location: str, options: tuple[tuple[str, Any], ...]) -> DicedStore:
    from diced.store import DicedStore

    # Option values may be unhashable (``storage_options`` is a dict); their repr is not.
    key = (os.getpid(), location, repr(options))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = DicedStore(location, **dict(options))
        return store


def reopen_array(address: ArrayAddress) -> DicedArray:
    """Open the array at ``address`` (the inverse of pickling a :class:`DicedArray`).

    Raises
    ------
    NotFoundError
        The store, repo, node or array does not exist where this process looks.
    """
    from diced.repo import DicedRepo

    store = _shared_store(address.location, address.options)
    record = store.catalog.by_uuid(address.repo)
    repo = DicedRepo(store, record, address.node, readonly=address.readonly)
    return repo.get_array(address.name)
