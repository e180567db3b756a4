"""Finding unreferenced objects (a report only; :mod:`diced.lifecycle.gc` deletes them).

An object below ``repos/`` is *referenced* when a named repo reaches it (see
:mod:`diced.versioning.reachability`). Everything else (blobs superseded at an open node,
pointers of nodes since locked, pages of interrupted locks, records of detached nodes,
repos whose name was deleted) is garbage.

Deleting what this finds is only safe while no process writes to the store: a writer
publishes a blob before the pointer that names it, and may reuse an unreferenced blob.
The collector's protocol (docs/format.md, "Garbage collection") is what makes deleting
safe under concurrent writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from diced.backends import ObjectStore
from diced.versioning import keys
from diced.versioning.reachability import Walker

__all__ = ["find_unreferenced"]


def find_unreferenced(backend: ObjectStore) -> Iterator[str]:
    """Yield the key of every object below ``repos/`` that no named repo references.

    Raises :class:`~diced.errors.StorageError` when a reachable object is damaged (what
    it references cannot be known).
    """
    with ThreadPoolExecutor(8, thread_name_prefix="diced-walk") as pool:
        reached = {ref.key for ref in Walker(backend, pool, strict=True).store_refs(seen=set())}
    for key in backend.list_prefix(keys.repos_prefix()):
        if key not in reached:
            yield key
