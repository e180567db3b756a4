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


# -- persistent writers for the multi-writer state machine ------------------------------------

#: The array the machine's writers share: every chunk holds voxels of every writer.
MACHINE_SHAPE = (8, 8)
MACHINE_CHUNKS = (4, 4)


def increment_rows(location: str, node: str, p: int, writers: int, rounds: int,
                   path: str, store: Any = None) -> tuple[int, int, int]:
    """Add 1 to every voxel of rows ``p::writers``, ``rounds`` times, through ``path``.

    Returns ``(landed, maybe, refused)``: writes that returned (they are in the node),
    writes that raised ConflictError (a lock raced them: each chunk may or may not have
    landed), and writes refused with LockedError (nothing written). Stops at the first
    failure: a node that is being locked takes no more writes.
    """
    from diced import ConflictError, LockedError

    own = store is None
    store = DicedStore(location) if own else store
    try:
        repo = store.open_repo(uuid=node)
        arr = repo.get_array("m")
        target = arr if path == "diced" else zarr.open_array(repo.zarr_store(), path="m")
        landed = 0
        for _ in range(rounds):
            current = np.asarray(arr[p::writers, :])
            try:
                target[p::writers, :] = current + 1
            except ConflictError:
                return landed, 1, 0
            except (LockedError, ValueError):  # ValueError: zarr's read-only refusal
                return landed, 0, 1
            landed += 1
        return landed, 0, 0
    finally:
        if own:
            store.close()


def serve_writer(location: str, commands: Any, results: Any) -> None:
    """A writer process: run :func:`increment_rows` for each command until ``None``."""
    with DicedStore(location) as store:
        while True:
            command = commands.get()
            if command is None:
                return
            try:
                results.put(("ok", increment_rows(location, *command, store=store)))
            except BaseException as exc:  # reported to the test, which fails on it
                results.put(("error", f"{type(exc).__name__}: {exc}"))
