"""A backend wrapper that counts the requests reaching the backend, for tests of request counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace

from diced.backends import ObjectStore
from diced.backends._base import ObjectInfo, Versioned
from diced.backends._forwarding import ForwardingObjectStore
from diced.store import DicedStore

__all__ = ["CountingObjectStore", "count_requests"]


class CountingObjectStore(ForwardingObjectStore):
    """``inner`` unchanged, counting every call.

    ``reads[key]`` counts ``get``, ``get_versioned`` and ``get_range`` of each key;
    ``calls[operation]`` counts every operation by name (``"get"``, ``"put_if_absent"``,
    ``"list_prefix"``...), one per request a remote backend would send (a listing counts
    once, however many pages a real bucket would return).
    """

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.reads: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        #: The keys of each ``get_many``, in order: requests sent together (one round trip).
        self.batches: list[list[str]] = []
        #: The keys of each ``put_many_immutable``, in order.
        self.put_batches: list[list[str]] = []

    def reset(self) -> None:
        """Forget every count so far."""
        self.reads.clear()
        self.calls.clear()
        self.batches.clear()
        self.put_batches.clear()

    def requests(self) -> int:
        """Total requests counted."""
        return sum(self.calls.values())

    def get(self, key: str) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        self.calls["get"] += 1
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # docstring inherited
        for key in keys:  # one request per key, sent together
            self.reads[key] += 1
        self.calls["get"] += len(keys)
        self.batches.append(list(keys))
        return self.inner.get_many(keys)

    def get_versioned(self, key: str) -> Versioned | None:
        # docstring inherited
        self.reads[key] += 1
        self.calls["get_versioned"] += 1
        return self.inner.get_versioned(key)

    def get_range(self, key: str, start: int, length: int) -> bytes | None:
        # docstring inherited
        self.reads[key] += 1
        self.calls["get_range"] += 1
        return self.inner.get_range(key, start, length)

    def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        self.calls["put"] += 1
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        self.calls["put_if_absent"] += 1
        return self.inner.put_if_absent(key, data)

    def put_immutable(self, key: str, data: bytes) -> None:
        # docstring inherited
        self.calls["put_immutable"] += 1
        self.inner.put_immutable(key, data)

    def put_many_immutable(self, items: Sequence[tuple[str, bytes]]) -> None:
        # docstring inherited
        self.calls["put_immutable"] += len(items)  # one request per object, sent together
        self.put_batches.append([key for key, _ in items])
        self.inner.put_many_immutable(items)

    def compare_and_swap(self, key: str, expected: bytes, new: bytes) -> bool:
        # docstring inherited
        self.calls["compare_and_swap"] += 1
        return self.inner.compare_and_swap(key, expected, new)

    def put_if_match(self, key: str, data: bytes, token: str | None) -> bool:
        # docstring inherited
        self.calls["put_if_match"] += 1
        return self.inner.put_if_match(key, data, token)

    def delete(self, key: str) -> None:
        # docstring inherited
        self.calls["delete"] += 1
        self.inner.delete(key)

    def list_prefix(self, prefix: str) -> Iterator[str]:
        # docstring inherited
        self.calls["list_prefix"] += 1
        return self.inner.list_prefix(prefix)

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        # docstring inherited
        self.calls["list_info"] += 1
        return self.inner.list_info(prefix)


def count_requests(store: DicedStore) -> CountingObjectStore:
    """Make every request of ``store`` go through a :class:`CountingObjectStore`; return it.

    Call it right after opening the store: repos, arrays and zarr Stores opened afterwards
    use the counting backend.
    """
    counting = CountingObjectStore(store.backend)
    store.backend = counting
    store.catalog.backend = counting
    store.context = replace(store.context, backend=counting)
    return counting
