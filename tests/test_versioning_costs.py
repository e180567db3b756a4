"""What diff and merge read and write, counted at the backend (design promises, not timings).

* A diff of two versions of an array with more than 10⁴ stored chunks that differ in 3
  chunks reads at most 3 × tree height index pages of each version's tree (equal
  subtrees are skipped by digest), and no chunk data.
* A merge takes a chunk changed on one side only by pointer: no chunk is read, decoded
  or written; only chunks changed on both sides are read, and a merged chunk equal to one
  side's adds no bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diced import DicedRepo, DicedStore
from diced.backends import CachedObjectStore
from diced.testing import CountingObjectStore
from diced.versioning import keys
from diced.versioning.chunkindex import ChunkIndex, PageCache
from diced.versioning.node import load_manifest

#: An unbounded 2-D array with 100 × 101 one-voxel chunks far from the origin: a tall tree.
ORIGIN = (1_000_000, 2_000_000)
BLOCK = (100, 101)


def _counted(location: str, cache: Path) -> tuple[DicedStore, CountingObjectStore]:
    """A fresh store object whose backend requests are counted (its caches are empty)."""
    store = DicedStore(location, cache=str(cache))
    cached = store.backend
    assert isinstance(cached, CachedObjectStore)
    counting = CountingObjectStore(cached.inner)
    cached.inner = counting
    return store, counting


def _pages(location: str, repo: DicedRepo, version: str) -> tuple[set[str], int]:
    """The page keys of array ``a``'s tree at ``version``, and its height."""
    record = repo.node_record(version)
    assert record.manifest is not None
    with DicedStore(location) as store:
        entry = load_manifest(store.backend, repo.repo_uuid, record.manifest).arrays["a"]
        index = ChunkIndex(store.backend, repo.repo_uuid, 2, PageCache())
        pages = {keys.page(repo.repo_uuid, p.hex()) for p in index.pages(entry.root,
                                                                           entry.height)}
    return pages, entry.height


@pytest.fixture(scope="module")
def sparse_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """Two locked versions of a sparse array of 10,100 stored chunks, 3 chunks apart."""
    location = str(tmp_path_factory.mktemp("costs") / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        array = repo.create_array("a", np.uint8, dims=2, chunks=(1, 1))
        values = (np.arange(BLOCK[0] * BLOCK[1]) % 250 + 1).astype(np.uint8).reshape(BLOCK)
        array[ORIGIN[0]:ORIGIN[0] + BLOCK[0], ORIGIN[1]:ORIGIN[1] + BLOCK[1]] = values
        repo.lock_node("10,100 chunks")
        assert len(repo.get_array("a").chunk_digests()) == BLOCK[0] * BLOCK[1]
        a = repo.uuid
        repo.change_version(repo.create_branch("three chunks"))
        for i, j in ((3, 4), (50, 60), (97, 2)):
            repo.get_array("a")[ORIGIN[0] + i, ORIGIN[1] + j] = 255
        repo.lock_node("3 changed")
        return location, a, repo.uuid


def test_diff_reads_only_the_changed_paths(sparse_versions: tuple[str, str, str],
                                           tmp_path: Path) -> None:
    location, a, b = sparse_versions
    store, counting = _counted(location, tmp_path / "cache")
    with store:
        repo = store.open_repo("r")
        counting.reset()
        diff = repo.diff(a, b)
        assert diff.arrays["a"].modified == tuple(sorted(
            (ORIGIN[0] + i, ORIGIN[1] + j) for i, j in ((3, 4), (50, 60), (97, 2))))
        read = {k for k in counting.reads if "/pages/" in k}
        assert not any("/blobs/" in k for k in counting.reads), "a diff reads no chunk data"
        for version in (a, b):
            pages, height = _pages(location, repo, version)
            assert height >= 4, "the test means a tall tree"
            assert len(pages) > 40
            mine = read & pages
            assert 0 < len(mine) <= 3 * height, (len(mine), height)
        assert sum(counting.calls.values()) <= 6 * height + 12


def test_merge_takes_one_sided_chunks_by_pointer(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        rng = np.random.default_rng(5)
        base = rng.integers(1, 200, (64, 64, 64), dtype=np.uint8)
        repo.create_array("a", np.uint8, shape=base.shape, chunks=(16, 16, 16))[...] = base
        repo.lock_node("base")
        left = repo.create_branch("left", "left")
        right = repo.create_branch("right", "right")
        repo.change_version(left)
        repo.get_array("a")[0:32, 0:16, 0:16] = 7       # chunks (0,0,0), (1,0,0)
        repo.get_array("a")[32:40, 32:48, 0:16] = 8     # half of chunk (2,2,0)
        repo.lock_node("left")
        repo.change_version(right)
        repo.get_array("a")[48:64, 48:64, 48:64] = 9    # chunk (3,3,3)
        repo.get_array("a")[40:48, 32:48, 0:16] = 10    # the other half of (2,2,0)
        repo.lock_node("right")
    store, counting = _counted(location, tmp_path / "cache")
    with store:
        repo = store.open_repo("r")
        blobs = keys.repo_prefix(repo.repo_uuid) + "blobs/"
        before = set(store.backend.list_prefix(blobs))
        counting.reset()
        merged = repo.merge([":left", ":right"], "merge", name="merged")
        blobs_read = {k for k in counting.reads if "/blobs/" in k}
        added = set(store.backend.list_prefix(blobs)) - before
        repo.change_version(merged)
        expected = base.copy()
        expected[0:32, 0:16, 0:16] = 7
        expected[32:40, 32:48, 0:16] = 8
        expected[48:64, 48:64, 48:64] = 9
        expected[40:48, 32:48, 0:16] = 10
        assert np.array_equal(repo.get_array("a")[...], expected)
    # Only the chunk both sides changed was read (its base, left and right versions) and
    # only its merge is a new blob: the other changed chunks are shared by pointer.
    assert len(blobs_read) == 3
    assert len(added) == 1
