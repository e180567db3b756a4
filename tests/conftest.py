"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from diced import DicedStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DicedStore]:
    """A new store on the local filesystem, closed after the test."""
    with DicedStore(str(tmp_path / "store.diced")) as s:
        yield s
