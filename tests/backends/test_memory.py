"""MemoryObjectStore against the backend conformance kit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from diced.backends import MemoryObjectStore, ObjectStore
from diced.testing import ObjectStoreTests


class TestMemoryObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self) -> Iterator[ObjectStore]:
        # fsspec's memory filesystem is process-wide: a unique root keeps tests apart.
        store = MemoryObjectStore(f"diced-tests/{uuid.uuid4().hex}")
        yield store
        for key in list(store.list_prefix("")):
            store.delete(key)
        store.close()


def test_stores_on_one_memory_path_share_objects() -> None:
    root = f"diced-tests/{uuid.uuid4().hex}"
    first, second = MemoryObjectStore(root), MemoryObjectStore(root)
    first.put("k", b"shared")
    assert second.get("k") == b"shared"
    assert MemoryObjectStore(f"{root}-other").get("k") is None
    second.delete("k")
    assert first.get("k") is None
