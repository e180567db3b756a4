"""The local cache and Dask against the object-store emulators (servers from conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore
from diced.backends import CachedObjectStore
from diced.testing import CountingObjectStore
from diced.versioning import keys

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from diced.dask import store_dask, to_dask  # noqa: E402


def _counted(store: DicedStore) -> CountingObjectStore:
    """Count what ``store``'s cache asks of the backend behind it."""
    assert isinstance(store.backend, CachedObjectStore)
    counting = store.backend.inner = CountingObjectStore(store.backend.inner)
    return counting


def test_second_read_from_the_emulator_is_served_from_the_cache(cloud_location: str,
                                                                 tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 255, (64, 64, 64), dtype=np.uint8)
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("vol")
        repo.create_array("img", np.uint8, shape=data.shape, chunks=(32, 32, 32))[...] = data
        repo.lock_node("first")
        node = repo.uuid
    cache = str(tmp_path / "cache")
    reads = []
    for _ in range(2):
        with DicedStore(cloud_location, cache=cache) as store:
            counting = _counted(store)
            assert np.array_equal(store.open_repo(uuid=node).get_array("img")[...], data)
            reads.append({k for k in counting.reads if keys.is_immutable(k)})
    assert len(reads[0]) == 8 + 1 + 1
    assert reads[1] == set()


@pytest.fixture(scope="module")
def client(gcs_url: str, s3_url: str) -> Iterator[distributed.Client]:
    # Started after the emulators, so the workers inherit their URLs from the environment.
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def test_dask_reads_and_writes_on_the_emulator(client: distributed.Client,
                                               cloud_location: str) -> None:
    shape = (60, 50, 40)
    expected = (np.arange(np.prod(shape)).reshape(shape) % 251).astype(np.uint8)
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("vol")
        array = repo.create_array("img", np.uint8, shape=shape, chunks=(32, 32, 32))
        array[...] = 3
        lazy = (da.arange(np.prod(shape), chunks=-1).reshape(shape) % 251).astype(np.uint8)
        store_dask(lazy.rechunk((23, 17, 40)), array)
        assert np.array_equal(array[...], expected)
        repo.lock_node("written by dask")
        read = to_dask(repo.get_array("img"), chunks=(32, 32, 32))
        with distributed.get_task_stream(client) as stream:
            assert np.array_equal(read.compute(), expected)
        assert len({task["worker"] for task in stream.data}) == 2
