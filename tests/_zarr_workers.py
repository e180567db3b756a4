"""Worker processes for the tests of writes through zarr (run by ``_workers.run_processes``).

Each worker opens the store itself, as an independent program would, and increments the
voxels it owns inside chunks that every worker shares, through one of zarr's write paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from diced import DicedStore

#: The shared array: every chunk holds voxels of every worker.
SHAPE = (8, 8, 8)
CHUNKS = (4, 4, 4)


def owned_rows(p: int, workers: int) -> list[int]:
    """Axis-0 positions worker ``p`` owns (every chunk has some of each worker's rows)."""
    return [z for z in range(SHAPE[0]) if z % workers == p]


def zarr_incrementer(location: str, options: dict[str, Any], node: str, p: int, workers: int,
                     rounds: int, path: str) -> int:
    """Add 1 to every voxel worker ``p`` owns, ``rounds`` times, through zarr.

    ``path`` picks the zarr entry point: ``"handle"`` (``arr.zarr.oindex``) or ``"store"``
    (``zarr.open_array(repo.zarr_store())``). Returns the rounds done.
    """
    with DicedStore(location, **options) as store:
        repo = store.open_repo(uuid=node)
        z = repo.get_array("em").zarr if path == "handle" else \
            zarr.open_array(repo.zarr_store(), path="em")
        rows = owned_rows(p, workers)
        for _ in range(rounds):
            current = z.oindex[rows, :, :]
            z.oindex[rows, :, :] = current + 1
        return rounds


def zarr_scalar_incrementer(location: str, options: dict[str, Any], node: str, p: int,
                            workers: int, rounds: int) -> int:
    """Like :func:`zarr_incrementer`, one voxel at a time with basic indexing (``z[i, j, k]``)."""
    with DicedStore(location, **options) as store:
        repo = store.open_repo(uuid=node)
        z = zarr.open_array(repo.zarr_store(), path="em")
        rows = owned_rows(p, workers)
        for _ in range(rounds):
            for row in rows:
                z[row, 1, 2] = np.int32(z[row, 1, 2]) + 1
        return rounds
