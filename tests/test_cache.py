"""The local cache level: read-through, bounded LRU, self-checking, shared by processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore
from diced.backends import CachedObjectStore, LocalObjectStore, ObjectStore
from diced.testing import CountingObjectStore, ObjectStoreTests
from diced.versioning import keys


def _counted(store: DicedStore) -> CountingObjectStore:
    """Count what ``store``'s cache asks of the backend behind it."""
    cached = store.backend
    assert isinstance(cached, CachedObjectStore)
    counting = CountingObjectStore(cached.inner)
    cached.inner = counting
    return counting


def _cache_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in (directory / "objects").rglob("*") if f.is_file())


class TestCachedObjectStore(ObjectStoreTests):
    """The wrapper keeps the backend contract, its cache serving the kit's ``enc/`` keys.

    The kit writes each ``enc/`` key once, except those with a ``%``, which it rewrites,
    so those are not declared immutable.
    """

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        store = CachedObjectStore(LocalObjectStore(str(tmp_path / "store")),
                                  str(tmp_path / "cache"), 2**20,
                                  lambda key: key.startswith("enc/") and "%" not in key)
        yield store
        store.close()


@pytest.fixture
def locked_volume(tmp_path: Path) -> tuple[str, str, np.ndarray]:
    """A local store holding a locked 3-D array; returns (location, node, data)."""
    location = str(tmp_path / "store.diced")
    data = np.random.default_rng(1).integers(0, 60000, (96, 80, 70), dtype=np.uint16)
    with DicedStore(location) as store:
        repo = store.create_repo("vol")
        repo.create_array("img", np.uint16, shape=data.shape, chunks=(32, 32, 32))[...] = data
        repo.lock_node("first")
        return location, repo.uuid, data


def test_second_read_of_a_locked_version_is_served_from_the_cache(
        locked_volume: tuple[str, str, np.ndarray], tmp_path: Path) -> None:
    location, node, data = locked_volume
    cache = str(tmp_path / "cache")
    with DicedStore(location, cache=cache) as cold:
        counting = _counted(cold)
        assert np.array_equal(cold.open_repo(uuid=node).get_array("img")[...], data)
        # 3 × 3 × 3 chunks, one index page, one manifest (threads racing on the page may
        # both fetch it).
        assert len({key for key in counting.reads if keys.is_immutable(key)}) == 27 + 1 + 1
    with DicedStore(location, cache=cache) as warm:
        counting = _counted(warm)
        assert np.array_equal(warm.open_repo(uuid=node).get_array("img")[...], data)
        assert not {key for key in counting.reads if keys.is_immutable(key)}
        assert counting.reads, "node records and names still come from the store"


def test_open_node_pointers_are_never_cached(tmp_path: Path) -> None:
    location, cache = str(tmp_path / "store.diced"), str(tmp_path / "cache")
    with DicedStore(location, cache=cache) as writer, DicedStore(location, cache=cache) as reader:
        repo = writer.create_repo("live")
        array = repo.create_array("a", np.uint8, shape=(64, 64), chunks=(32, 32))
        seen = reader.open_repo("live").get_array("a")
        counting = _counted(reader)
        for value in (1, 2, 3):
            array[...] = value
            assert (seen[...] == value).all()
        pointers = [k for k in counting.reads if "/open/" in k]
        assert pointers and all(counting.reads[k] == 3 for k in pointers)


def test_eviction_keeps_the_cache_within_its_bound(tmp_path: Path) -> None:
    inner = CountingObjectStore(LocalObjectStore(str(tmp_path / "store")))
    bound = 20_000
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), bound, lambda key: True)
    for i in range(60):
        inner.put(f"obj/{i}", bytes([i]) * 1000)
    for i in range(60):
        assert cache.get(f"obj/{i}") == bytes([i]) * 1000
        # obj/0 is used between every other read, so it is never the least recent.
        assert cache.get("obj/0") == bytes([0]) * 1000
        assert _cache_bytes(tmp_path / "cache") <= bound
    assert inner.reads["obj/0"] == 1
    assert _cache_bytes(tmp_path / "cache") > bound // 2
    # The oldest objects were evicted: reading them again reaches the backend.
    assert cache.get("obj/1") == bytes([1]) * 1000
    assert inner.reads["obj/1"] == 2
    assert cache.get("obj/59") == bytes([59]) * 1000
    assert inner.reads["obj/59"] == 1


def test_eviction_removes_temporary_files_of_killed_processes(tmp_path: Path) -> None:
    inner = LocalObjectStore(str(tmp_path / "store"))
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), 3000, lambda key: True)
    stale, fresh = tmp_path / "cache" / "tmp" / "stale", tmp_path / "cache" / "tmp" / "fresh"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (0, 0))
    for i in range(5):
        inner.put(f"obj/{i}", b"y" * 1000)
        cache.get(f"obj/{i}")
    assert not stale.exists()
    assert fresh.exists(), "a temporary file may belong to a write in progress"


def test_objects_larger_than_the_bound_are_not_cached(tmp_path: Path) -> None:
    inner = CountingObjectStore(LocalObjectStore(str(tmp_path / "store")))
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), 1000, lambda key: True)
    inner.put("big", b"x" * 5000)
    assert cache.get("big") == cache.get("big") == b"x" * 5000
    assert inner.reads["big"] == 2
    assert _cache_bytes(tmp_path / "cache") == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_corrupted_cache_file_is_detected_and_fetched_again(tmp_path: Path,
                                                               damage: str) -> None:
    inner = CountingObjectStore(LocalObjectStore(str(tmp_path / "store")))
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), 2**20, lambda key: True)
    payload = bytes(range(256)) * 8
    inner.put("blob", payload)
    assert cache.get("blob") == payload
    (cached,) = [f for f in (tmp_path / "cache" / "objects").rglob("*") if f.is_file()]
    raw = bytearray(cached.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0x01
    cached.write_bytes({"flip": bytes(raw), "truncate": bytes(raw[:-1]), "empty": b""}[damage])
    assert cache.get("blob") == payload
    assert cache.get_range("blob", 10, 5) == payload[10:15]
    assert inner.reads["blob"] == 2, "the damaged copy was replaced by a good one"


def test_deleting_an_object_drops_its_cached_copy(tmp_path: Path) -> None:
    inner = LocalObjectStore(str(tmp_path / "store"))
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), 2**20, lambda key: True)
    cache.put("k", b"v")
    assert cache.get("k") == b"v"
    cache.delete("k")
    assert cache.get("k") is None
    assert cache.get_range("k", 0, 1) is None


def test_capabilities_come_from_the_inner_backend(tmp_path: Path) -> None:
    inner = LocalObjectStore(str(tmp_path / "store"))
    inner.writable = False
    inner.atomic_conditional_writes = False
    cache = CachedObjectStore(inner, str(tmp_path / "cache"), 2**20, lambda key: True)
    assert cache.writable is False
    assert cache.atomic_conditional_writes is False


def _read_many(location: str, cache: str, cache_size: int, node: str, rounds: int) -> int:
    """Read the array ``rounds`` times through a shared cache; return a checksum."""
    total = 0
    with DicedStore(location, cache=cache, cache_size=cache_size) as store:
        array = store.open_repo(uuid=node, readonly=True).get_array("img")
        for i in range(rounds):
            total += int(array[(i * 7) % 64:, :, :].astype(np.uint64).sum())
    return total


def test_processes_share_one_cache_directory(locked_volume: tuple[str, str, np.ndarray],
                                            tmp_path: Path) -> None:
    location, node, data = locked_volume
    cache = tmp_path / "cache"
    # Room for about half of the array's chunks, so the processes evict under each other.
    bound = 700_000
    expected = sum(int(data[(i * 7) % 64:].astype(np.uint64).sum()) for i in range(20))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
        futures = [pool.submit(_read_many, location, str(cache), bound, node, 20)
                   for _ in range(3)]
        assert [f.result(timeout=300) for f in futures] == [expected] * 3
    assert 0 < _cache_bytes(cache) <= bound
    assert os.listdir(cache / "tmp") == []
