"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from diced import DicedRepo, DicedStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DicedStore]:
    """A new store on the local filesystem, closed after the test."""
    with DicedStore(str(tmp_path / "store.diced")) as s:
        yield s


@pytest.fixture
def repo(store: DicedStore) -> DicedRepo:
    """A new repo at its open root node, in the ``store`` fixture."""
    return store.create_repo("r", "test repo")
