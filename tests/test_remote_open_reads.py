"""Small reads at an open node of a remote store: one round trip for the node's state and
the chunks' pointers, then one for the blobs, and the same answers as the ordinary path.

A local store with its counting backend marked remote takes the remote code path while
the counts stay exact; the cloud kits run the same reads against the emulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from diced import DicedRepo, DicedStore, NotFoundError
from diced.array import PREFETCH_CHUNKS
from diced.testing import CountingObjectStore, count_requests

CHUNK = 8


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[DicedRepo, CountingObjectStore]]:
    """A repo whose locked parent holds 1s and whose open child rewrote one chunk to 2."""
    with DicedStore(str(tmp_path / "store")) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint16, shape=(32, 32, 32), chunks=(CHUNK,) * 3)[...] = 1
        repo.lock_node("parent")
        repo.change_version(repo.create_branch("child"))
        repo.get_array("a")[0:8, 0:8, 0:8] = 2
        requests = count_requests(store)
        requests.remote = True
        yield store.open_repo(uuid=repo.uuid), requests


def _expected() -> np.ndarray:
    expected = np.ones((32, 32, 32), np.uint16)
    expected[0:8, 0:8, 0:8] = 2
    return expected


@pytest.mark.parametrize(("box", "k"), [
    ((slice(0, 8), slice(0, 8), slice(0, 8)), 1),      # the rewritten chunk
    ((slice(8, 16), slice(0, 8), slice(0, 8)), 1),     # a chunk of the parent only
    ((slice(3, 13), slice(5, 11), slice(0, 8)), 4),    # 2 × 2 × 1 chunks, one rewritten
    ((5, slice(0, 32), slice(6, 9)), 8),               # an integer axis: 1 × 4 × 2 chunks
])
def test_a_small_read_costs_two_round_trips(
        remote: tuple[DicedRepo, CountingObjectStore], box: tuple[object, ...], k: int) -> None:
    repo, requests = remote
    arr = repo.get_array("a")
    arr[...]  # index pages into the cache
    requests.reset()
    np.testing.assert_array_equal(arr[box], _expected()[box])
    # one batch: the node record, the array's entry and the k pointers ...
    assert len(requests.batches) == 1 and len(requests.batches[0]) == 2 + k
    assert requests.batches[0][0].endswith(f"/nodes/{repo.uuid}.json")
    # ... then one get per chunk's blob (every chunk here is stored), nothing else
    assert dict(requests.calls) == {"get": 2 + k + k}


def test_a_read_of_many_chunks_lists_instead(
        remote: tuple[DicedRepo, CountingObjectStore]) -> None:
    repo, requests = remote
    arr = repo.get_array("a")
    arr[...]
    requests.reset()
    np.testing.assert_array_equal(arr[...], _expected())  # 64 chunks > PREFETCH_CHUNKS
    assert PREFETCH_CHUNKS < 64 and requests.calls["list_prefix"] >= 1


def test_a_handle_on_a_deleted_array_refuses_to_read(
        remote: tuple[DicedRepo, CountingObjectStore]) -> None:
    repo, _ = remote
    old = repo.get_array("a")
    repo.delete_array("a")
    with pytest.raises(NotFoundError, match="deleted"):
        old[0:8, 0:8, 0:8]
    repo.create_array("a", np.uint16, shape=(32, 32, 32), chunks=(CHUNK,) * 3)
    with pytest.raises(NotFoundError, match="deleted"):
        old[0:8, 0:8, 0:8]


def test_a_resize_through_another_handle_is_followed(
        remote: tuple[DicedRepo, CountingObjectStore]) -> None:
    repo, _ = remote
    reader, writer = repo.get_array("a"), repo.get_array("a")
    writer.resize((16, 32, 32))
    writer.resize((24, 32, 32))
    got = reader[10:20, 0:8, 0:8]
    expected = np.ones((24, 32, 32), np.uint16)
    expected[16:] = 0
    np.testing.assert_array_equal(got, expected[10:20, 0:8, 0:8])
    assert reader.shape == (24, 32, 32)


def test_a_lock_by_another_handle_is_followed(
        remote: tuple[DicedRepo, CountingObjectStore]) -> None:
    repo, requests = remote
    arr = repo.get_array("a")
    arr[0:8, 0:8, 0:8]
    repo.lock_node("done")
    requests.reset()
    np.testing.assert_array_equal(arr[0:8, 0:8, 0:8], 2)
    # now a locked node: no batch, just the blob
    assert dict(requests.calls) == {"get": 1} and requests.batches == []
