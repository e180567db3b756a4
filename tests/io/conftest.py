"""Fixtures of the import/export tests: a repo at an open version and a test volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from diced import DicedRepo, DicedStore

#: Small chunks, so the test volumes span several slabs and partial edge chunks.
CHUNKS = (16, 16, 16)


@pytest.fixture
def repo(store: DicedStore) -> DicedRepo:
    return store.create_repo("io")


@pytest.fixture
def volume() -> npt.NDArray[Any]:
    """A uint16 volume whose shape is no multiple of the chunks (edges are partial)."""
    rng = np.random.default_rng(13)
    return rng.integers(0, 4000, size=(37, 29, 41), dtype=np.uint16)


def write_stack(directory: Path, volume: npt.NDArray[Any], name: str = "z{}.tif") -> Path:
    """One 2-D TIFF per z-slice, unpadded numbers (z9 before z10 only when sorted naturally)."""
    import tifffile

    directory.mkdir(parents=True, exist_ok=True)
    for i, plane in enumerate(volume):
        tifffile.imwrite(directory / name.format(i), plane)
    return directory
