"""Reading immutable objects that the garbage collector may be holding in its trash.

The collector (:mod:`diced.lifecycle.gc`) never deletes a blob, page or manifest at once:
it first moves it to ``trash/<key>`` and deletes it from there only after the grace period,
once a fresh walk of the store finds nothing that references it (else it restores it).
A writer may have found the object existing just before the move and published a
reference to it (content-addressed writes reuse what exists), so a reader that misses an
immutable object looks in the trash before calling it missing. docs/format.md gives the
argument step by step.
"""

from __future__ import annotations

from diced.backends import ObjectStore
from diced.versioning import keys

__all__ = ["read_immutable"]


def read_immutable(backend: ObjectStore, key: str) -> bytes | None:
    """The bytes of the blob, page or manifest ``key``, from the trash if not in place.

    ``None`` only when the object is in neither place. The key is read once more after a
    miss in the trash: the collector restores an object (writes it back, then deletes the
    trash copy), and a reader between the two must not see it nowhere.
    """
    data = backend.get(key)
    if data is None:
        data = backend.get(keys.trash(key))
        if data is None:
            data = backend.get(key)
    return data
