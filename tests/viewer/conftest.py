"""Fixtures of the viewer tests: the test store behind a running viewer, and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium, new_page
from _viewer_data import Served, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The test store behind a read-only viewer (shared by a module's tests)."""
    yield from serve(tmp_path_factory.mktemp("viewer") / "store.diced", allow_writes=False)


@pytest.fixture
def served_rw(tmp_path: Path) -> Iterator[Served]:
    """A fresh test store behind a viewer started with writes allowed."""
    yield from serve(tmp_path / "store.diced", allow_writes=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (shared by a module's tests)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; the test fails if the page raised a JavaScript error."""
    with new_page(browser) as opened:
        yield opened
