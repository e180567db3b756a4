"""zarr's own Store test kit (zarr.testing.store.StoreTests) against diced's zarr Store.

The kit writes and reads arbitrary keys ("c/0", "foo/c/0.0", "zarr.json" holding any
bytes...): outside any array, a NodeStore keeps such keys as plain objects of the version,
so it passes as the key-value store zarr expects. ``set``/``get`` below bypass the Store,
as the kit requires, by reading and writing those objects through the node directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zarr.abc.store import Store
from zarr.core.buffer import Buffer, cpu
from zarr.testing.store import StoreTests

from diced import DicedStore
from diced.versioning.node import ZARR_OBJECT_PREFIX
from diced.zarr_store import NodeStore


class NodeStoreKit(StoreTests[NodeStore, cpu.Buffer]):
    """The kit over a NodeStore of a new repo in the store at the ``location`` fixture."""

    store_cls = NodeStore
    buffer_cls = cpu.Buffer

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError("subclasses give a fresh store location")

    @pytest.fixture
    def diced_store(self, location: str) -> Iterator[DicedStore]:
        with DicedStore(location) as store:
            yield store

    @pytest.fixture
    def store_kwargs(self, diced_store: DicedStore) -> dict[str, Any]:
        node_store = diced_store.create_repo("kit").zarr_store()
        return {"ctx": node_store.ctx, "view": node_store.view}

    async def set(self, store: Store, key: str, value: Buffer) -> None:
        assert isinstance(store, NodeStore)
        store.view.write_file(ZARR_OBJECT_PREFIX + key, value.to_bytes())

    async def get(self, store: Store, key: str) -> Buffer:
        assert isinstance(store, NodeStore)
        return self.buffer_cls.from_bytes(store.view.read_file(ZARR_OBJECT_PREFIX + key))

    def test_store_repr(self, store: NodeStore) -> None:
        assert repr(store).startswith("NodeStore(repo=")

    def test_store_supports_writes(self, store: NodeStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: NodeStore) -> None:
        assert store.supports_listing


class TestMemoryNodeStore(NodeStoreKit):
    @pytest.fixture
    def location(self) -> str:
        return f"memory://zarr-store-kit/{uuid.uuid4().hex}"


class TestLocalNodeStore(NodeStoreKit):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "store")
