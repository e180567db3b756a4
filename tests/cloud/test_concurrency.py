"""Several processes writing, locking and branching one store on each cloud emulator.

The same workers as ``tests/test_concurrent_writers.py`` (in ``tests/_workers.py``), each
in its own ``spawn`` process with its own ``DicedStore`` on the ``gs://`` or ``s3://``
location; the emulator URLs reach them through the environment (see ``conftest.py``).
Fewer processes than on local disk keep the run short on a small machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

import _workers as w

from diced import DicedStore

NPROC = 3


def _store_with_root(location: str) -> str:
    with DicedStore(location) as store:
        return store.create_repo("r").uuid


def _assert_one_winner(outcomes: list[w.Outcome], loser_error: str) -> w.Outcome:
    winners = [o for o in outcomes if o.ok]
    assert len(winners) == 1, [(o.index, o.error, o.message[:300]) for o in outcomes]
    for o in outcomes:
        if not o.ok:
            assert o.error == loser_error and o.diced, f"racer {o.index}: {o.error}: {o.message}"
    return winners[0]


def test_partial_writes_to_shared_chunks_lose_nothing(cloud_location: str) -> None:
    # Writer p owns the voxels where (x + y + z) % period == p; the last class is nobody's
    # and keeps the data the open node inherits from its locked parent.
    period = NPROC + 1
    root = _store_with_root(cloud_location)
    base = np.arange(np.prod(w.SHARED_SHAPE), dtype=np.uint32).reshape(w.SHARED_SHAPE) + 100
    with DicedStore(cloud_location) as store:
        repo = store.open_repo(uuid=root)
        repo.create_array("shared", np.uint32, shape=w.SHARED_SHAPE,
                          chunks=w.SHARED_CHUNKS)[...] = base
        repo.lock_node("L")
        child = repo.create_branch("C")
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("partial_writer", (cloud_location, child, p, period, barrier)) for p in range(NPROC)],
        timeout=240,
    )
    for o in outcomes:
        assert o.ok, f"writer {o.index} failed: {o.error}: {o.message}"

    with DicedStore(cloud_location) as store:
        got = store.open_repo(uuid=child).get_array("shared")[...]
        assert np.array_equal(store.open_repo(uuid=root).get_array("shared")[...], base)
    z, y, x = np.indices(w.SHARED_SHAPE)
    owner = (x + y + z) % period
    expected = np.where(owner == NPROC, base, owner + 1).astype(np.uint32)
    lost = {p: int(np.count_nonzero((owner == p) & (got != expected))) for p in range(period)}
    assert not any(lost.values()), f"voxels wrong per owner ({NPROC}: inherited): {lost}"


def test_lock_race_has_exactly_one_winner(cloud_location: str) -> None:
    root = _store_with_root(cloud_location)
    with DicedStore(cloud_location) as store:
        arr = store.open_repo(uuid=root).create_array("a", np.uint16, shape=(64, 64, 64),
                                                      chunks=(32, 32, 32))
        arr[...] = 5
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_lock", (cloud_location, root, p, barrier)) for p in range(NPROC)])
    winner = _assert_one_winner(outcomes, "LockedError")
    with DicedStore(cloud_location) as store:
        repo = store.open_repo(uuid=root)
        assert repo.node_record().lock_message == f"locked by racer {winner.index}"
        assert np.all(repo.get_array("a")[...] == 5)


def test_branch_race_has_exactly_one_winner(cloud_location: str) -> None:
    root = _store_with_root(cloud_location)
    with DicedStore(cloud_location) as store:
        store.open_repo(uuid=root).lock_node("base")
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_branch", (cloud_location, root, p, "feature", barrier)) for p in range(NPROC)])
    winner = _assert_one_winner(outcomes, "AlreadyExistsError")
    with DicedStore(cloud_location) as store:
        nodes = {n.uuid: n for n in store.open_repo("r").list_nodes()}
        assert set(nodes) == {root, winner.value}
        assert nodes[winner.value].note == f"branch by racer {winner.index}"


def test_create_array_race_has_exactly_one_winner(cloud_location: str) -> None:
    root = _store_with_root(cloud_location)
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_create_array", (cloud_location, root, p, barrier)) for p in range(NPROC)])
    winner = _assert_one_winner(outcomes, "AlreadyExistsError")
    with DicedStore(cloud_location) as store:
        arr = store.open_repo(uuid=root).get_array("raced")
        assert arr.shape == (64, 64, 64 + winner.index)
        assert arr[0, 0, 0] == winner.index + 1


def test_partial_writes_through_zarr_lose_nothing(cloud_location: str) -> None:
    import _zarr_workers as zw

    with DicedStore(cloud_location) as store:
        repo = store.create_repo("z")
        repo.create_array("em", np.int32, shape=zw.SHAPE, chunks=zw.CHUNKS)
        node = repo.uuid
    workers, rounds = 4, 5
    outcomes = w.run_processes([("_zarr_workers:zarr_incrementer",
                                 (cloud_location, {}, node, p, workers, rounds, path))
                                for p, path in zip(range(workers), ["store", "handle"] * 2,
                                                   strict=True)], timeout=300)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    with DicedStore(cloud_location) as store:
        data = store.open_repo(uuid=node).get_array("em")[...]
    assert np.array_equal(data, np.full(zw.SHAPE, rounds, np.int32))
