"""Fixtures of the client tests: the test store behind a running viewer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _client_data import ClientData, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientData]:
    """The test store behind a read-only viewer (shared by a module's tests)."""
    yield from serve(tmp_path_factory.mktemp("clients") / "store.diced")


@pytest.fixture
def served_rw(tmp_path: Path) -> Iterator[ClientData]:
    """A fresh test store behind a viewer that allows writes."""
    yield from serve(tmp_path / "store.diced", allow_writes=True)
