"""A backend wrapper that counts the reads reaching the backend, for tests of caching."""

from __future__ import annotations

from collections import Counter

from diced.backends import ObjectStore
from diced.backends._forwarding import ForwardingObjectStore

__all__ = ["CountingObjectStore"]


class CountingObjectStore(ForwardingObjectStore):
    """``inner`` unchanged, with ``reads[key]`` counting every ``get`` and ``get_range``."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.reads: Counter[str] = Counter()

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        return self.inner.get_range(key, start, length)
