"""Fixtures of the pyramid tests: a store whose backend requests are counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from diced import DicedStore
from diced.backends import CachedObjectStore
from diced.testing import CountingObjectStore


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[DicedStore, CountingObjectStore]]:
    """A local store, and the counter of every request its cache passes to the disk.

    Chunk pointers are the only objects written with a plain ``put`` (blobs are
    create-only, records and array entries conditional), so ``calls["put"]`` counts the
    chunks written.
    """
    with DicedStore(str(tmp_path / "store.diced"), cache=str(tmp_path / "cache")) as store:
        cached = store.backend
        assert isinstance(cached, CachedObjectStore)
        counting = CountingObjectStore(cached.inner)
        cached.inner = counting
        yield store, counting
