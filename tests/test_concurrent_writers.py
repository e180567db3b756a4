"""Several processes writing, locking and branching one local store at the same time.

Checks the design promises R4 (a write is visible to other processes once
``__setitem__`` returns) and R5 (concurrent writers to one open node lose nothing), and
that every one-winner operation (lock, branch, create_array) has exactly one winner while
the others get a clear diced error. Workers live in ``tests/_workers.py`` so that
``spawn`` processes can import them.

The last tests force one interleaving inside a single process (a backend method of one
store handle is wrapped to lock the node, change a chunk or stall at a chosen point), so
races that multi-process runs hit only rarely are checked every time.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _workers as w

from diced import ConflictError, DicedStore, LockedError, StorageError

NPROC = 6
_opened: list[DicedStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def _fresh(path: str) -> DicedStore:
    """The store at ``path`` opened afresh, as another process would (closed after the test)."""
    store = DicedStore(path)
    _opened.append(store)
    return store


def _store_with_root(tmp_path: Path) -> tuple[str, DicedStore, str]:
    path = str(tmp_path / "store")
    store = _fresh(path)
    repo = store.create_repo("r")
    return path, store, repo.uuid


def _winners(outcomes: list[w.Outcome]) -> list[w.Outcome]:
    return [o for o in outcomes if o.ok]


def _assert_losers(outcomes: list[w.Outcome], error: str) -> None:
    for o in outcomes:
        if not o.ok:
            assert o.error == error and o.diced, f"racer {o.index}: {o.error}: {o.message}"


def test_partial_writes_to_shared_chunks_lose_nothing(tmp_path: Path) -> None:
    # Writer p owns the voxels where (x + y + z) % 7 == p; class 6 is nobody's and must
    # keep the data C inherits from its locked parent L, whose chunks every writer reads.
    period = NPROC + 1
    path, store, root = _store_with_root(tmp_path)
    repo = store.open_repo(uuid=root)
    arr = repo.create_array("shared", np.uint32, shape=w.SHARED_SHAPE, chunks=w.SHARED_CHUNKS)
    base = np.arange(np.prod(w.SHARED_SHAPE), dtype=np.uint32).reshape(w.SHARED_SHAPE) + 100
    arr[...] = base
    repo.lock_node("L")
    child = repo.create_branch("C")
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("partial_writer", (path, child, p, period, barrier)) for p in range(NPROC)],
        timeout=300,
    )
    for o in outcomes:
        assert o.ok, f"writer {o.index} failed: {o.error}: {o.message}"

    got = _fresh(path).open_repo(uuid=child).get_array("shared")[...]
    z, y, x = np.indices(w.SHARED_SHAPE)
    owner = (x + y + z) % period
    expected = np.where(owner == NPROC, base, owner + 1).astype(np.uint32)
    lost = {p: int(np.count_nonzero((owner == p) & (got != expected))) for p in range(period)}
    assert not any(lost.values()), f"voxels wrong per owner (6: inherited): {lost}"
    assert np.array_equal(_fresh(path).open_repo(uuid=root).get_array("shared")[...], base)


def test_disjoint_whole_chunk_writers(tmp_path: Path) -> None:
    path, store, root = _store_with_root(tmp_path)
    shape, chunks = (128, 128, 128), (32, 32, 64)
    store.open_repo(uuid=root).create_array("disjoint", np.uint32, shape=shape, chunks=chunks)
    grid = [(cz, cy, cx) for cz in range(4) for cy in range(4) for cx in range(2)]
    owned = {p: grid[p::4] for p in range(4)}
    rounds = 3
    barrier = w.CTX.Barrier(4)
    outcomes = w.run_processes(
        [("chunk_writer", (path, root, p, owned[p], chunks, rounds, barrier)) for p in range(4)]
    )
    for o in outcomes:
        assert o.ok, f"writer {o.index} failed: {o.error}: {o.message}"

    got = _fresh(path).open_repo(uuid=root).get_array("disjoint")[...]
    for p, cs in owned.items():
        for i, c in enumerate(cs):
            sel = tuple(slice(ci * n, (ci + 1) * n) for ci, n in zip(c, chunks, strict=True))
            assert np.array_equal(got[sel], w.chunk_data((p, i, rounds - 1), chunks)), \
                f"chunk {c} of writer {p} is not its last write"


def test_writes_are_visible_to_other_processes_when_setitem_returns(tmp_path: Path) -> None:
    path, _, root = _store_with_root(tmp_path)
    to_reader, acks = w.CTX.Queue(), w.CTX.Queue()
    count = 30
    try:
        writer, reader = w.run_processes([
            ("visibility_writer", (path, root, count, to_reader, acks)),
            ("visibility_reader", (path, root, count, to_reader, acks)),
        ])
    finally:
        for q in (to_reader, acks):
            q.close()
            q.join_thread()
    assert writer.ok, writer.message
    assert reader.ok, reader.message
    assert reader.value == []


def test_lock_race_has_exactly_one_winner(tmp_path: Path) -> None:
    path, store, root = _store_with_root(tmp_path)
    arr = store.open_repo(uuid=root).create_array("a", np.uint32, shape=(128, 128, 128))
    arr[...] = np.arange(128**3, dtype=np.uint32).reshape(arr.shape)
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_lock", (path, root, p, barrier)) for p in range(NPROC)]
    )
    winners = _winners(outcomes)
    assert len(winners) == 1, [(o.index, o.error) for o in outcomes]
    _assert_losers(outcomes, "LockedError")

    repo = _fresh(path).open_repo(uuid=root)
    record = repo.node_record()
    assert record.state == "locked"
    assert record.lock_message == f"locked by racer {winners[0].index}"
    assert np.array_equal(repo.get_array("a")[...], arr[...])
    with pytest.raises(LockedError):
        repo.lock_node("again")


@pytest.mark.parametrize("name", [None, "feature"])
def test_branch_race_has_exactly_one_winner(tmp_path: Path, name: str | None) -> None:
    path, store, root = _store_with_root(tmp_path)
    repo = store.open_repo(uuid=root)
    repo.create_array("a", np.uint8, shape=(8, 8, 8))[...] = 3
    repo.lock_node("base")
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_branch", (path, root, p, name, barrier)) for p in range(NPROC)]
    )
    winners = _winners(outcomes)
    assert len(winners) == 1, [(o.index, o.error) for o in outcomes]
    _assert_losers(outcomes, "AlreadyExistsError")
    child = winners[0].value

    repo = _fresh(path).open_repo("r")
    nodes = {n.uuid: n for n in repo.list_nodes()}
    assert set(nodes) == {root, child}
    assert nodes[root].children == (child,)
    assert nodes[child].note == f"branch by racer {winners[0].index}"
    assert nodes[child].branch == (name or "master")
    if name is None:
        assert repo.uuid == child  # the master leaf
    else:
        repo.change_version(f":{name}")
        assert repo.uuid == child
    assert np.all(repo.get_array("a")[...] == 3)


def test_create_array_race_has_exactly_one_winner(tmp_path: Path) -> None:
    path, _, root = _store_with_root(tmp_path)
    barrier = w.CTX.Barrier(NPROC)
    outcomes = w.run_processes(
        [("race_create_array", (path, root, p, barrier)) for p in range(NPROC)]
    )
    winners = _winners(outcomes)
    assert len(winners) == 1, [(o.index, o.error) for o in outcomes]
    _assert_losers(outcomes, "AlreadyExistsError")
    p = winners[0].index

    repo = _fresh(path).open_repo(uuid=root)
    assert [n for n, _ in repo.list_instances()] == ["raced"]
    arr = repo.get_array("raced")
    assert arr.shape == (64, 64, 64 + p)
    assert arr[0, 0, 0] == p + 1


def test_writers_racing_a_lock_keep_the_locked_node_stable(tmp_path: Path) -> None:
    path, store, root = _store_with_root(tmp_path)
    store.open_repo(uuid=root).create_array("a", np.uint32, shape=w.SHARED_SHAPE,
                                            chunks=w.SHARED_CHUNKS)
    nwriters = 3
    barrier = w.CTX.Barrier(nwriters + 1)
    started = [w.CTX.Event() for _ in range(nwriters)]
    outcomes = w.run_processes(
        [("writer_until_locked", (path, root, i, barrier, started[i]))
         for i in range(nwriters)]
        + [("locker", (path, root, barrier, started))],
        timeout=300,
    )
    for o in outcomes:
        assert o.ok, f"process {o.index} failed: {o.error}: {o.message}"
    digest_at_lock, _ = outcomes[-1].value

    repo = _fresh(path).open_repo(uuid=root)
    assert repo.locked
    locked = repo.get_array("a")[...]
    assert hashlib.sha256(locked.tobytes()).hexdigest() == digest_at_lock, \
        "the locked node changed after lock_node returned"

    for i in range(nwriters):
        for region, sel in zip(("own", "shared"), w.lock_race_regions(i), strict=True):
            last_ok, conflicted = outcomes[i].value[region]
            allowed = {last_ok} | ({conflicted} if conflicted is not None else set())
            values = set(np.unique(locked[sel]).tolist())
            # A write that returned before the lock must be in the locked node; one that
            # raised ConflictError may be there or not, and nothing else may be.
            assert len(values) == 1 and values <= allowed, \
                f"writer {i} {region}: locked node holds {sorted(values)[:5]}, " \
                f"allowed {sorted(allowed)}"
    with pytest.raises(LockedError):
        repo.get_array("a")[0, 0, 0] = 1


def test_handles_opened_before_a_lock_read_the_locked_content(tmp_path: Path) -> None:
    """A write that lands after the lock (its writer gets ConflictError) is in no version,
    so no handle may show it: not a fresh one, and not one opened while the node was open.

    The interleaving is forced: the writer's store runs lock_node (as another process
    would) between the writer's open-check and its chunk-pointer write.
    """
    path, store, root = _store_with_root(tmp_path)
    store.open_repo(uuid=root).create_array("a", np.uint32, shape=(64, 64, 64))[...] = 1
    writer_store = _fresh(path)
    writer = writer_store.open_repo(uuid=root).get_array("a")
    held_repo = _fresh(path).open_repo(uuid=root)
    held_array = _fresh(path).open_repo(uuid=root).get_array("a")

    put = writer_store.backend.put

    def put_after_a_lock(key: str, data: bytes) -> None:
        if "/chunks/" in key:
            _fresh(path).open_repo(uuid=root).lock_node("locked mid-write")
        put(key, data)

    writer_store.backend.put = put_after_a_lock  # type: ignore[method-assign]
    with pytest.raises(ConflictError):
        writer[...] = 7

    fresh = _fresh(path).open_repo(uuid=root)
    assert fresh.locked and np.all(fresh.get_array("a")[...] == 1)
    assert held_repo.locked
    assert np.all(held_repo.get_array("a")[...] == 1), \
        "a repo handle reporting locked=True reads a write that is in no version"
    assert np.all(held_array[...] == 1), \
        "an array handle opened before the lock reads a write that is in no version"


def test_a_retried_write_never_lands_after_a_later_write(tmp_path: Path) -> None:
    """Once ``__setitem__`` returns, no part of that write may still be in flight.

    A write covers chunk A partly and chunk B whole. Another writer changes chunk A
    between this write's read and its compare-and-swap, so the write is retried; the
    first attempt's write of chunk B is slow (a stalled disk). The write returns, a
    second write replaces chunk B, and only then does the stalled chunk-B write of the
    abandoned attempt finish: it must not replace the second write. A JPEG (lossy) array
    is used because its codec chain goes through zarr's pipeline.
    """
    pytest.importorskip("imagecodecs")
    path, store, root = _store_with_root(tmp_path)
    store.open_repo(uuid=root).create_array("a", np.uint8, shape=(64, 64, 128),
                                            chunks=(64, 64, 64), lossycompression=True)
    writer_store = _fresh(path)
    arr = writer_store.open_repo(uuid=root).get_array("a")
    other = _fresh(path).open_repo(uuid=root).get_array("a")
    backend = writer_store.backend
    put, put_if_absent = backend.put, backend.put_if_absent
    stalled, contended, release, landed = (threading.Event() for _ in range(4))

    def stalled_put(key: str, data: bytes) -> None:
        if key.endswith("/c/0/0/1") and not stalled.is_set():
            stalled.set()
            release.wait(2)  # a correct write waits for this; a buggy one has returned
            put(key, data)
            landed.set()
            return
        put(key, data)

    def contended_put_if_absent(key: str, data: bytes) -> bool:
        if key.endswith("/c/0/0/0") and not contended.is_set():
            contended.set()
            stalled.wait(2)  # conflict once the chunk-B write is surely in flight
            other[0, 0, 0] = 9  # another writer gets to chunk A first
        return put_if_absent(key, data)

    backend.put = stalled_put  # type: ignore[method-assign]
    backend.put_if_absent = contended_put_if_absent  # type: ignore[method-assign]
    arr[:, :, 32:128] = 100
    arr[:, :, 64:128] = 200
    release.set()
    assert landed.wait(10)
    assert np.all(arr[:, :, 64:128] == 200), "an abandoned attempt of an earlier write " \
        "replaced a later write after both had returned"
    assert np.all(_fresh(path).open_repo(uuid=root).get_array("a")[:, :, 64:] == 200)


def test_a_failed_write_never_lands_after_a_later_write(tmp_path: Path) -> None:
    """Once ``__setitem__`` has raised, no part of that write may still be in flight.

    A write of two whole chunks fails on chunk A (a transient storage error) while its
    write of chunk B is stalled. The failed write raises; a second write replaces chunk
    B and returns; then the stalled chunk-B write finishes: it must not replace it.
    """
    path, store, root = _store_with_root(tmp_path)
    store.open_repo(uuid=root).create_array("a", np.uint32, shape=(64, 64, 128),
                                            chunks=(64, 64, 64))
    writer_store = _fresh(path)
    arr = writer_store.open_repo(uuid=root).get_array("a")
    put = writer_store.backend.put
    failed, stalled, release, landed = (threading.Event() for _ in range(4))

    def faulty_put(key: str, data: bytes) -> None:
        if key.endswith("/c/0/0/0") and not failed.is_set():
            failed.set()
            stalled.wait(2)  # fail once the chunk-B write is surely in flight
            raise StorageError("transient I/O error")
        if key.endswith("/c/0/0/1") and not stalled.is_set():
            stalled.set()
            release.wait(2)  # a correct write waits for this before raising
            put(key, data)
            landed.set()
            return
        put(key, data)

    writer_store.backend.put = faulty_put  # type: ignore[method-assign]
    with pytest.raises(StorageError):
        arr[...] = 1
    arr[:, :, 64:128] = 2
    release.set()
    assert landed.wait(10)
    assert np.all(arr[:, :, 64:128] == 2), "a write that had raised replaced a later write"
