"""The storage requests each operation costs, as docs/format.md states them.

Counted with diced.testing.count_requests on a local store: every backend call is one
request a bucket would receive (a listing counts once, however many pages it has).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore
from diced.testing import CountingObjectStore, count_requests

CHUNK = 64


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[DicedStore, CountingObjectStore]]:
    with DicedStore(str(tmp_path / "store")) as store:
        yield store, count_requests(store)


def _box(chunks_along_x: int) -> tuple[slice, ...]:
    return (slice(0, CHUNK), slice(0, CHUNK), slice(0, CHUNK * chunks_along_x))


@pytest.mark.parametrize("k", [1, 4])
def test_whole_chunk_write(counted: tuple[DicedStore, CountingObjectStore], k: int) -> None:
    store, requests = counted
    arr = store.create_repo("r").create_array("a", np.uint8, shape=(256, 256, 256))
    requests.reset()
    arr[_box(k)] = 1
    # the node record and the array's entry (one batch), per chunk a blob and a pointer,
    # the node record again
    assert dict(requests.calls) == {"get": 2, "get_versioned": 1, "put_immutable": k, "put": k}
    assert requests.batches[0] == [key for key in requests.batches[0]
                                   if "/nodes/" in key or "/arrays/" in key]


def test_partial_chunk_write(counted: tuple[DicedStore, CountingObjectStore]) -> None:
    store, requests = counted
    arr = store.create_repo("r").create_array("a", np.uint8, shape=(256, 256, 256))
    arr[_box(1)] = 1
    requests.reset()
    arr[0, 0, 0] = 2
    # + the pointer with its version token, the blob; then a conditional pointer write,
    # with no second read of the pointer
    assert dict(requests.calls) == {"get_versioned": 2, "get": 3, "put_immutable": 1,
                                    "put_if_match": 1}


@pytest.mark.parametrize("k", [1, 4])
def test_open_read(counted: tuple[DicedStore, CountingObjectStore], k: int) -> None:
    store, requests = counted
    arr = store.create_repo("r").create_array("a", np.uint8, shape=(256, 256, 256))
    arr[_box(k)] = 1
    requests.reset()
    arr[_box(k)]
    # node record (a lock since?), the array's entry; per chunk its pointer and blob
    assert dict(requests.calls) == {"get_versioned": 1 + k, "get": 1 + k}


@pytest.mark.parametrize("k", [1, 4])
def test_locked_read(tmp_path: Path, k: int) -> None:
    location = str(tmp_path / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=(256, 256, 256))[...] = 1
        repo.lock_node("locked")
    with DicedStore(location) as store:
        requests = count_requests(store)
        arr = store.open_repo("r").get_array("a")
        requests.reset()
        arr[_box(k)]
        # one blob per chunk, plus the tree's one index page the first time
        assert dict(requests.calls) == {"get": k + 1}
        requests.reset()
        arr[_box(k)]
        assert dict(requests.calls) == {"get": k}  # pages are cached: blobs only


def test_a_locked_read_fetches_each_index_page_once(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # 10³ chunks: a two-level tree (a root and 8 leaf pages of 8³ chunks). The read's
    # threads all miss the root, then the leaves, at once; one request fetches each.
    location = str(tmp_path / "store")
    volume = np.random.default_rng(0).integers(0, 255, size=(80, 80, 80), dtype=np.uint8)
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=volume.shape, chunks=(8, 8, 8))[...] = volume
        repo.lock_node("locked")
    with DicedStore(location) as store:
        requests = count_requests(store)
        get = requests.inner.get

        def slow_get(key: str) -> bytes | None:
            time.sleep(0.002)  # a bucket's round trip, so that the threads' misses overlap
            return get(key)

        monkeypatch.setattr(requests.inner, "get", slow_get)
        arr = store.open_repo("r").get_array("a")
        requests.reset()
        assert (arr[...] == volume).all()
        assert dict(requests.calls) == {"get": 1000 + 9}
        assert max(requests.reads.values()) == 1


def test_lock_and_branch(counted: tuple[DicedStore, CountingObjectStore]) -> None:
    store, requests = counted
    repo = store.create_repo("r")
    repo.create_array("a", np.uint8, shape=(256, 256, 256))[_box(2)] = 1
    requests.reset()
    repo.lock_node("locked")
    # list entries (pyramids to update before sealing), seal (read + conditional write),
    # list entries and the array's pointers and the files, read them, write one index page
    # and the manifest, flip the record (the handle keeps the view the lock switched)
    assert requests.calls["put_if_match"] == 1 and requests.calls["compare_and_swap"] == 1
    assert requests.calls["list_prefix"] == 4
    assert requests.calls["put_immutable"] == 1 and requests.calls["put_if_absent"] == 1
    assert requests.put_batches == [[key for key in requests.put_batches[0]
                                     if "/pages/" in key]], "the index pages, in one batch"
    requests.reset()
    repo.create_branch("child")
    # the parent's record; the child's record and claim (create-only); the branch hint
    assert dict(requests.calls) == {"get": 1, "put_if_absent": 2, "put": 1}


def test_a_lock_writes_its_index_pages_in_one_batch(
        counted: tuple[DicedStore, CountingObjectStore]) -> None:
    # 1000 chunks of 8³ need 8 leaf pages and a root: one round trip on a bucket, not nine.
    store, requests = counted
    repo = store.create_repo("r")
    arr = repo.create_array("a", np.uint8, shape=(80, 80, 80), chunks=(8, 8, 8))
    arr[...] = np.arange(80 ** 3, dtype=np.uint64).reshape(80, 80, 80) % 251
    requests.reset()
    repo.lock_node("locked")
    assert len(requests.put_batches) == 1 and len(requests.put_batches[0]) == 9
    assert requests.calls["put_immutable"] == 9
    assert (repo.get_array("a")[...] == arr[...]).all()


def test_open_read_on_a_remote_store_lists_pointers(tmp_path: Path) -> None:
    # The parent holds 24 chunks along x; the open child rewrote 2 of them. A remote store
    # (every request a network round trip) reads the child's pointers by one listing of the
    # slab touched, then only the 2 pointers that exist, instead of one get per chunk.
    with DicedStore(str(tmp_path / "store")) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=(64, 64, 1536))[...] = 1
        repo.lock_node("parent")
        repo.change_version(repo.create_branch("child"))
        child = repo.get_array("a")
        child[0:64, 0:64, 0:64] = 2
        child[0:64, 0:64, 1472:1536] = 3
        requests = count_requests(store)
        requests.remote = True
        arr = store.open_repo(uuid=repo.uuid).get_array("a")
        arr[...]  # pages into the cache
        requests.reset()
        got = arr[...]
        assert (got[..., 0] == 2).all() and (got[..., 100] == 1).all() and (got[..., -1] == 3).all()
        assert dict(requests.calls) == {"get_versioned": 1 + 2, "get": 1 + 24,
                                        "list_prefix": 1}
        requests.remote = False
        requests.reset()
        arr[...]
        assert dict(requests.calls) == {"get_versioned": 1 + 24, "get": 1 + 24}
