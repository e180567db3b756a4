"""Dask over diced with a real cluster of worker processes: reads, and writes from all workers."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

import dask  # noqa: E402

from diced import ConflictError, DicedStore, InvalidInputError, LockedError  # noqa: E402
from diced.dask import store_dask, to_dask  # noqa: E402

SHAPE = (100, 90, 50)
CHUNKS = (32, 32, 32)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _volume() -> np.ndarray:
    return (np.arange(np.prod(SHAPE), dtype=np.uint64).reshape(SHAPE) * 7919 % 65521) \
        .astype(np.uint16)


def _lazy_volume(chunks: tuple[int, ...]) -> da.Array:
    """:func:`_volume`, computed chunk by chunk on the workers."""
    index = da.arange(np.prod(SHAPE), dtype=np.uint64, chunks=-1).reshape(SHAPE)
    return (index * 7919 % 65521).astype(np.uint16).rechunk(chunks)


def _workers_used(client: distributed.Client, run: object) -> set[str]:
    with distributed.get_task_stream(client) as stream:
        assert callable(run)
        run()
    return {task["worker"] for task in stream.data}


def test_read_locked_and_open_versions(client: distributed.Client, tmp_path: Path) -> None:
    data = _volume()
    with DicedStore(str(tmp_path / "store.diced")) as store:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint16, shape=SHAPE, chunks=CHUNKS)
        array[...] = data
        assert np.array_equal(to_dask(array).compute(), data)
        repo.lock_node("first")
        locked = repo.get_array("img")
        repo.change_version(repo.create_branch("edit"))
        child = repo.get_array("img")
        child[10:60, 5:40, :] = 7
        edited = data.copy()
        edited[10:60, 5:40, :] = 7

        lazy = to_dask(locked, chunks=(64, 64, 50))
        assert lazy.chunks == ((64, 36), (64, 26), (50,))
        assert len(_workers_used(client, lazy.compute)) == 2
        assert np.array_equal(lazy.compute(), data)
        assert np.array_equal(to_dask(child).compute(), edited)
        assert np.array_equal(to_dask(child)[20:30, ::-3].compute(), edited[20:30, ::-3])


@pytest.mark.parametrize("chunks", [(64, 32, 32), (17, 23, 29)], ids=["aligned", "unaligned"])
def test_write_from_all_workers_at_once(client: distributed.Client, tmp_path: Path,
                                        chunks: tuple[int, ...]) -> None:
    with DicedStore(str(tmp_path / "store.diced")) as store:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint16, shape=SHAPE, chunks=CHUNKS)
        array[...] = 1
        workers = _workers_used(client, lambda: store_dask(_lazy_volume(chunks), array))
        assert len(workers) == 2
        assert np.array_equal(array[...], _volume())
        repo.lock_node("written by dask")
        assert np.array_equal(to_dask(repo.get_array("img")).compute(), _volume())


def test_locked_and_unbounded_arrays_are_refused(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "store.diced")) as store:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint8, shape=(8, 8), chunks=(4, 4))
        sparse = repo.create_array("sparse", np.uint8)
        with pytest.raises(InvalidInputError, match="unbounded"):
            to_dask(sparse)
        with pytest.raises(InvalidInputError, match="shape"):
            store_dask(da.zeros((4, 4), dtype=np.uint8), array)
        repo.lock_node("done")
        with pytest.raises(LockedError):
            store_dask(da.zeros((8, 8), dtype=np.uint8), repo.get_array("img"))


def test_a_lock_racing_a_dask_write_is_a_conflict(tmp_path: Path) -> None:
    """Dask chunks are separate writes: when another process locks the node after some
    landed, the whole store must raise ConflictError (part of it may be in the locked
    version), not the LockedError of a later chunk, which says nothing was written.

    The interleaving is forced on the threaded scheduler: computing a dask chunk after
    the first chunk was stored locks the node from another store, between two writes.
    """
    location = str(tmp_path / "store.diced")
    with DicedStore(location) as store, DicedStore(location) as other:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint8, shape=(64, 8), chunks=(4, 8))
        put, stored, locking = store.backend.put, threading.Event(), threading.Lock()

        def put_noting(key: str, data: bytes) -> None:
            put(key, data)
            if "/chunks/" in key:
                stored.set()

        def ones_locking(block: np.ndarray) -> np.ndarray:
            if stored.is_set() and locking.acquire(blocking=False):
                other.open_repo(uuid=repo.uuid).lock_node("locked between two writes")
            return block + 1

        store.backend.put = put_noting  # type: ignore[method-assign]
        lazy = da.zeros((64, 8), dtype=np.uint8, chunks=(4, 8)).map_blocks(ones_locking)
        with dask.config.set(scheduler="threads", num_workers=1), \
                pytest.raises(ConflictError, match="locked by another process"):
            store_dask(lazy, array)
        locked = other.open_repo(uuid=repo.uuid)
        assert locked.locked and locked.get_array("img")[...].any()


def test_a_pickled_handle_reopens_the_same_version(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "store.diced"), cache=str(tmp_path / "cache")) as store:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint8, shape=(8, 8), chunks=(4, 4))
        array[...] = 5
        repo.lock_node("five")
        locked = repo.get_array("img")
        repo.change_version(repo.create_branch("next"))
        repo.get_array("img")[...] = 6
        copy = pickle.loads(pickle.dumps(locked))
        assert copy.locked and (copy[...] == 5).all()
        copy = pickle.loads(pickle.dumps(repo.get_array("img")))
        assert not copy.locked and (copy[...] == 6).all()
        copy[0, 0] = 9
        assert repo.get_array("img")[0, 0] == 9
