"""Fixtures shared by the test modules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

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

@pytest.fixture
def memory_location() -> Iterator[str]:
    """A fresh ``memory://`` location, removed afterwards (the memory fs is process-wide)."""
    name = f"diced-scenarios-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = MemoryFileSystem()
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture(params=["local", "memory"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store location on the real filesystem or in memory."""
    if request.param == "local":
        return str(tmp_path / "store.diced")
    return request.getfixturevalue("memory_location")


@pytest.fixture
def myrepo(store: DicedStore) -> DicedRepo:
    """DICED's common setup: create "myrepo" and open it."""
    store.create_repo("myrepo")
    return store.open_repo("myrepo")
