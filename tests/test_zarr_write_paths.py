"""Every path into an array through zarr keeps DicedArray's promises (issue 8: defects 1, 3-8).

zarr on ``repo.zarr_store()`` and ``arr.zarr`` must lose no concurrent update, accept every
chunk key encoding (or refuse it) without corrupting data at lock, never alias one chunk's
key to another, map sharded storage right, and change nothing when a call fails.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

sys.path.insert(0, str(Path(__file__).parent))

import _workers as w
import _zarr_workers as zw

from diced import ConflictError, DicedRepo, DicedStore, InvalidInputError, NotFoundError

ENCODINGS: list[dict[str, Any]] = [
    {"name": "default", "separator": "/"},
    {"name": "default", "separator": "."},
    {"name": "v2", "separator": "."},
    {"name": "v2", "separator": "/"},
]


def _keys(store: Any) -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in store.list()]

    return sorted(asyncio.run(collect()))


def _get(store: Any, key: str) -> bytes | None:
    buffer = asyncio.run(store.get(key, default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


# -- defect 1: no lost update through zarr -----------------------------------------------------


def _shared_array(tmp_path: Path) -> tuple[str, str]:
    location = str(tmp_path / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        repo.create_array("em", np.int32, shape=zw.SHAPE, chunks=zw.CHUNKS)
        return location, repo.uuid


@pytest.mark.parametrize("path", ["handle", "store"])
def test_concurrent_zarr_partial_writes_lose_nothing(tmp_path: Path, path: str) -> None:
    location, node = _shared_array(tmp_path)
    workers, rounds = 8, 12
    outcomes = w.run_processes([("_zarr_workers:zarr_incrementer",
                                 (location, {}, node, p, workers, rounds, path))
                                for p in range(workers)], timeout=300)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    with DicedStore(location) as store:
        data = store.open_repo(uuid=node).get_array("em")[...]
    assert np.array_equal(data, np.full(zw.SHAPE, rounds, np.int32))


def test_concurrent_zarr_scalar_writes_lose_nothing(tmp_path: Path) -> None:
    location, node = _shared_array(tmp_path)
    workers, rounds = 4, 15
    outcomes = w.run_processes([("_zarr_workers:zarr_scalar_incrementer",
                                 (location, {}, node, p, workers, rounds))
                                for p in range(workers)], timeout=300)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    with DicedStore(location) as store:
        data = store.open_repo(uuid=node).get_array("em")[:, 1, 2]
    assert np.array_equal(data, np.full(zw.SHAPE[0], rounds, np.int32))


def test_threads_sharing_one_zarr_array_lose_nothing(repo: DicedRepo) -> None:
    repo.create_array("em", np.int32, shape=zw.SHAPE, chunks=zw.CHUNKS)
    z = zarr.open_array(repo.zarr_store(), path="em")
    workers, rounds = 4, 10

    def run(p: int) -> None:
        rows = zw.owned_rows(p, workers)
        for _ in range(rounds):
            z.oindex[rows, :, :] = z.oindex[rows, :, :] + 1

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(workers)))
    assert np.array_equal(repo.get_array("em")[...], np.full(zw.SHAPE, rounds, np.int32))


@pytest.mark.parametrize("path", ["handle", "store"])
def test_a_lock_racing_a_zarr_write_is_a_conflict_not_a_refusal(tmp_path: Path, path: str
                                                                 ) -> None:
    """A zarr write of many chunks that a lock interrupts after its first chunk landed must
    raise ConflictError (it may be in the locked version), never LockedError, which says
    nothing was written. zarr hands the pipeline one chunk per batch; the pipeline must
    guard the whole selection, as the fast path does.

    The interleaving is forced: another store locks the node when the writer stores its
    first chunk; the selection has more chunks than zarr writes at once.
    """
    location = str(tmp_path / "store")
    with DicedStore(location) as setup:
        repo = setup.create_repo("r")
        repo.create_array("em", np.int32, shape=(256, 8, 8), chunks=(4, 8, 8))
        node = repo.uuid
    with DicedStore(location) as writer_store, DicedStore(location) as other:
        repo = writer_store.open_repo(uuid=node)
        target = repo.get_array("em").zarr if path == "handle" else \
            zarr.open_array(repo.zarr_store(), path="em")
        put, first = writer_store.backend.put, threading.Lock()

        def put_then_lock(key: str, data: bytes) -> None:
            put(key, data)
            if "/chunks/" in key and first.acquire(blocking=False):
                other.open_repo(uuid=node).lock_node("locked mid-write")

        writer_store.backend.put = put_then_lock  # type: ignore[method-assign]
        with pytest.raises(ConflictError, match="locked by another process"):
            target[...] = np.ones((256, 8, 8), np.int32)
    with DicedStore(location) as check:
        locked = check.open_repo(uuid=node)
        assert locked.locked
        stored = np.asarray(locked.get_array("em")[...])
        assert set(np.unique(stored)) <= {0, 1} and stored.any(), \
            "the locked version must hold the chunk stored before the lock"


# -- defect 3: every chunk key encoding ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: f"{e['name']}{e['separator']}")
def test_every_chunk_key_encoding_survives_lock(repo: DicedRepo, encoding: dict[str, Any]
                                                ) -> None:
    z = zarr.create_array(repo.zarr_store(), name="v", shape=(16,), chunks=(2,), dtype="i4",
                          chunk_key_encoding=encoding)
    z[:] = np.arange(1, 17)
    z[3] = 100
    expected = np.arange(1, 17)
    expected[3] = 100
    assert np.array_equal(repo.get_array("v")[:], expected)
    keys_open = _keys(repo.zarr_store())
    repo.lock_node("encodings")
    assert np.array_equal(repo.get_array("v")[:], expected)
    assert np.array_equal(zarr.open_array(repo.zarr_store(), path="v", mode="r")[:], expected)
    assert _keys(repo.zarr_store()) == keys_open
    assert f"v/{zarr.open_array(repo.zarr_store(), path='v').metadata.encode_chunk_key((5,))}" \
        in keys_open


# -- defect 4: no key aliasing ------------------------------------------------------------------


def test_chunk_keys_with_wrong_coordinates_name_nothing(repo: DicedRepo) -> None:
    em = repo.create_array("em", np.uint8, shape=(8, 8, 8), chunks=(4, 4, 4))
    em[...] = np.arange(512, dtype=np.uint8).reshape(8, 8, 8)
    store = repo.zarr_store()
    assert _get(store, "em/c/1/0/0") is not None
    for key in ["em/c/0/0/0/0", "em/c/1/0", "em/c/1", "em/c/2/0/0", "em/c/01/0/0",
                "em/c/-1/0/0", "em/c/0/0/0/", "em/c/a/0/0", "em/c.1.0.0", "em/1/0/0"]:
        assert _get(store, key) is None, key
        with pytest.raises(InvalidInputError, match="not a chunk key"):
            asyncio.run(store.set(key, default_buffer_prototype().buffer.from_bytes(b"x")))
    repo.lock_node("no stray pointer")  # would fail if a bad key had become a pointer
    assert repo.node_record().state == "locked"
    assert np.array_equal(repo.get_array("em")[...],
                          np.arange(512, dtype=np.uint8).reshape(8, 8, 8))


# -- defect 5: sharded arrays map keys with the shard grid ---------------------------------------


def test_resize_of_a_sharded_array_drops_what_it_cuts(repo: DicedRepo) -> None:
    z = zarr.create_array(repo.zarr_store(), name="sh", shape=(16, 16), chunks=(4, 4),
                          shards=(8, 8), dtype="u2")
    z[...] = 7
    arr = repo.get_array("sh")
    assert arr.storage_chunks == (8, 8) and arr.chunks == (4, 4)
    assert arr.get_extents() == (slice(0, 16), slice(0, 16))
    arr.resize(5, 11)
    arr.resize(16, 16)
    expected = np.zeros((16, 16), np.uint16)
    expected[:5, :11] = 7
    assert np.array_equal(arr[...], expected)
    assert arr.get_extents() == (slice(0, 8), slice(0, 16))
    repo.lock_node("after resize")
    assert np.array_equal(repo.get_array("sh")[...], expected)


# -- defect 7: overwrite through zarr ----------------------------------------------------------


def test_zarr_overwrite_replaces_an_array(repo: DicedRepo) -> None:
    em = repo.create_array("em", np.uint8, shape=(4, 4), chunks=(2, 2))
    em[...] = 5
    z = zarr.create_array(repo.zarr_store(), name="em", shape=(6,), chunks=(3,), dtype="f4",
                          overwrite=True)
    assert z.shape == (6,)
    assert np.array_equal(z[:], np.zeros(6, np.float32))
    fresh = repo.get_array("em")
    assert fresh.shape == (6,) and fresh.dtype == np.float32
    with pytest.raises(NotFoundError, match="deleted"):
        em[0, 0] = 1  # the old handle's array is gone
    repo.lock_node("overwritten")
    assert np.array_equal(repo.get_array("em")[:], np.zeros(6, np.float32))


def test_failing_zarr_metadata_write_changes_nothing(repo: DicedRepo) -> None:
    em = repo.create_array("em", np.uint8, shape=(4, 4), chunks=(2, 2))
    em[...] = 5
    store = repo.zarr_store()
    bad = b'{"zarr_format": 3, "node_type": "array", "shape": "oops"}'
    with pytest.raises(InvalidInputError):
        asyncio.run(store.set("em/zarr.json", default_buffer_prototype().buffer.from_bytes(bad)))
    assert np.array_equal(repo.get_array("em")[...], np.full((4, 4), 5, np.uint8))


# -- defect 8: odd dtypes do not break the node --------------------------------------------------


def test_string_and_datetime_arrays_are_listed(repo: DicedRepo, store: DicedStore) -> None:
    repo.create_array("em", np.uint8, shape=(4,), chunks=(2,))
    strings = zarr.create_array(repo.zarr_store(), name="names", shape=(3,), chunks=(3,),
                                dtype=str)
    strings[:] = np.array(["a", "bb", "ccc"])
    times = zarr.create_array(repo.zarr_store(), name="times", shape=(2,), chunks=(2,),
                              dtype="datetime64[s]")
    times[:] = np.array(["2026-01-01T00:00:00", "2026-12-01T00:00:00"], "datetime64[s]")
    listed = dict(repo.list_instances())
    assert sorted(listed) == ["em", "names", "times"]
    assert listed["times"] == np.dtype("datetime64[s]")
    assert list(repo.get_array("names")[:]) == ["a", "bb", "ccc"]
    assert repo.get_array("times")[1] == np.datetime64("2026-12-01T00:00:00")
    repo.lock_node("odd dtypes")
    assert sorted(dict(repo.list_instances())) == ["em", "names", "times"]
    assert list(zarr.open_array(repo.zarr_store(), path="names")[:]) == ["a", "bb", "ccc"]


# -- the rest of the zarr hierarchy round-trips ----------------------------------------------------


def test_groups_and_attributes_round_trip(repo: DicedRepo) -> None:
    root = zarr.open_group(repo.zarr_store(), mode="a")
    root.attrs["project"] = "fly brain"
    sub = root.create_group("meta")
    sub.attrs["note"] = "kept"
    repo.lock_node("hierarchy")
    again = zarr.open_group(repo.zarr_store(), mode="r")
    assert again.attrs["project"] == "fly brain"
    assert again["meta"].attrs["note"] == "kept"
    assert repo.list_files() == []  # zarr objects are not user files
    with pytest.raises(InvalidInputError, match="top level"):
        child = repo.create_branch("b")
        repo.change_version(child)
        zarr.open_group(repo.zarr_store(), mode="a")["meta"].create_array(
            "nested", shape=(2,), dtype="u1")
