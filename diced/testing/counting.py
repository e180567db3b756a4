"""A backend wrapper that counts the reads reaching the backend, for tests of caching."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from diced.backends import ObjectStore

__all__ = ["CountingObjectStore"]


class CountingObjectStore(ObjectStore):
    """``inner`` unchanged, with ``reads[key]`` counting every ``get`` and ``get_range``."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.reads: Counter[str] = Counter()
        self.atomic_conditional_writes = inner.atomic_conditional_writes
        self.writable = inner.writable

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        return self.inner.put_if_absent(key, data)

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        return self.inner.compare_and_swap(key, expected, new)

    def delete(self, key: str) -> None:
        # docstring inherited
        self.inner.delete(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        return self.inner.list_prefix(prefix)

    def close(self) -> None:
        # docstring inherited
        self.inner.close()
