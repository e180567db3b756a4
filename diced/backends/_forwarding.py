"""A backend that forwards every call to another: the base of backend wrappers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from diced.backends._base import ObjectInfo, ObjectStore, Versioned

__all__ = ["ForwardingObjectStore"]


class ForwardingObjectStore(ObjectStore):
    """``inner`` unchanged, capabilities included; subclasses override what they add."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.atomic_conditional_writes = inner.atomic_conditional_writes
        self.writable = inner.writable
        self.remote = inner.remote

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # docstring inherited
        return self.inner.get_many(keys)

    def get_versioned(self, key: str) -> Versioned | None:
        # docstring inherited
        return self.inner.get_versioned(key)

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        return self.inner.put_if_absent(key, data)

    def put_immutable(self, key: str, data: bytes) -> None:
        # docstring inherited
        self.inner.put_immutable(key, data)

    def put_many_immutable(self, items: Sequence[tuple[str, bytes]]) -> None:
        # docstring inherited
        self.inner.put_many_immutable(items)

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        return self.inner.compare_and_swap(key, expected, new)

    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        # docstring inherited
        return self.inner.put_if_match(key, data, token)

    def delete(self, key: str) -> None:
        # docstring inherited
        self.inner.delete(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        return self.inner.list_prefix(prefix)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        # docstring inherited
        return self.inner.list_info(prefix)

    def sweep_temporaries(self, older_than: float) -> tuple[int, int]:
        # docstring inherited
        return self.inner.sweep_temporaries(older_than)

    def close(self) -> None:
        # docstring inherited
        self.inner.close()
