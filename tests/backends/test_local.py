"""LocalObjectStore against the backend conformance kit, plus races between processes."""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from diced.backends import LocalObjectStore, ObjectStore
from diced.testing import ObjectStoreTests
from diced.testing.backend import increment_counter


class TestLocalObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        store = LocalObjectStore(str(tmp_path / "store"))
        yield store
        store.close()


def test_objects_persist_across_store_instances(tmp_path: Path) -> None:
    LocalObjectStore(str(tmp_path)).put("a/b", b"kept")
    assert LocalObjectStore(str(tmp_path)).get("a/b") == b"kept"
    assert list(LocalObjectStore(str(tmp_path)).list_prefix("")) == ["a/b"]


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(str(tmp_path), fsync=True)
    store.put("k", b"v")
    assert store.put_if_absent("k", b"w") is False
    assert store.put_if_absent("j", b"w") is True
    assert store.compare_and_swap("k", b"stale", b"x") is False
    assert store.compare_and_swap("k", b"v", b"x") is True
    assert list((tmp_path / ".diced-local" / "tmp").iterdir()) == []
    assert sorted(store.list_prefix("")) == ["j", "k"]


# -- races between processes -----------------------------------------------------------------
# Workers are module-level functions so that "spawn" children can import them; each child
# opens its own LocalObjectStore on the shared directory.

_SPAWN = multiprocessing.get_context("spawn")
_FOUR_MB = 4 * 1024 * 1024


def _versions() -> tuple[bytes, bytes]:
    """Two 4 MB contents that differ at every byte, so any mix of them is detectable."""
    ascending = bytes(range(256)) * (_FOUR_MB // 256)
    return ascending, ascending[::-1]


def _child(
    target: Callable[..., Any], args: tuple[Any, ...], start: Barrier, results: Any, index: int
) -> None:
    try:
        start.wait(timeout=60)
        results.put((index, True, target(*args)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


def _run_processes(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
    """Run each ``target(*args)`` in its own spawned process, all released at once.

    Returns the results in call order; fails with the child's traceback if one raised.
    """
    start = _SPAWN.Barrier(len(calls))
    results = _SPAWN.Queue()
    processes = [
        _SPAWN.Process(target=_child, args=(target, args, start, results, index))
        for index, (target, args) in enumerate(calls)
    ]
    outcomes: dict[int, tuple[bool, Any]] = {}
    deadline = time.monotonic() + 60
    try:
        for process in processes:
            process.start()
        while len(outcomes) < len(calls):
            try:
                index, ok, value = results.get(timeout=0.2)
                outcomes[index] = (ok, value)
            except queue.Empty:
                crashed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                assert not crashed, f"a child process died with exit code {crashed}"
                assert time.monotonic() < deadline, "child processes did not finish in 60 s"
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    failures = [value for ok, value in outcomes.values() if not ok]
    assert not failures, "\n".join(failures)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    return [outcomes[index][1] for index in range(len(calls))]


def _increment_many(root: str, key: str, times: int) -> int:
    store = LocalObjectStore(root)
    return sum(increment_counter(store, key) for _ in range(times))


def _claim_all(root: str, keys: list[str], claimant: int) -> list[bool]:
    store = LocalObjectStore(root)
    return [store.put_if_absent(key, b"process %d" % claimant) for key in keys]


def _rewrite(root: str, key: str, rounds: int, writing: Event) -> int:
    store = LocalObjectStore(root)
    versions = _versions()
    try:
        for i in range(1, rounds + 1):
            store.put(key, versions[i % 2])
    finally:
        writing.clear()
    return rounds


def _read_while_writing(root: str, key: str, writing: Event) -> tuple[int, int, int]:
    """Read ``key`` until ``writing`` clears; return (whole reads, torn reads, ranged reads)."""
    store = LocalObjectStore(root)
    versions = _versions()
    middles = {version[_FOUR_MB // 2 : _FOUR_MB // 2 + 4096] for version in versions}
    reads = torn = ranged = 0
    while writing.is_set():
        reads += 1
        torn += store.get(key) not in versions
        ranged += 1
        torn += store.get_range(key, _FOUR_MB // 2, 4096) not in middles
    return reads, torn, ranged


def test_processes_increment_a_counter_with_compare_and_swap(tmp_path: Path) -> None:
    root = str(tmp_path)
    LocalObjectStore(root).put("counter", b"0")
    _run_processes([(_increment_many, (root, "counter", 100))] * 4)
    assert LocalObjectStore(root).get("counter") == b"400"


def test_processes_racing_put_if_absent_have_one_winner(tmp_path: Path) -> None:
    # Many keys claimed in the same order keep the processes racing key after key, which
    # makes a check-then-write implementation fail reliably rather than by luck.
    root, keys = str(tmp_path), [f"locks/{i}" for i in range(100)]
    won = _run_processes([(_claim_all, (root, keys, claimant)) for claimant in range(6)])
    store = LocalObjectStore(root)
    for i, key in enumerate(keys):
        winners = [claimant for claimant in range(6) if won[claimant][i]]
        assert len(winners) == 1, f"{key}: won by processes {winners}"
        assert store.get(key) == b"process %d" % winners[0]


def test_reader_process_never_sees_a_torn_object(tmp_path: Path) -> None:
    root = str(tmp_path)
    LocalObjectStore(root).put("big", _versions()[0])
    writing = _SPAWN.Event()
    writing.set()
    rounds, (reads, torn, _) = _run_processes(
        [(_rewrite, (root, "big", 50, writing)), (_read_while_writing, (root, "big", writing))]
    )
    assert rounds == 50
    assert reads > 0
    assert torn == 0


def test_put_immutable_repairs_a_torn_copy(tmp_path: Path) -> None:
    # What a writer killed mid-write leaves: the first part of the bytes under the name.
    store = LocalObjectStore(str(tmp_path / "store"))
    data = bytes(range(256)) * 64
    (tmp_path / "store" / "blobs").mkdir(parents=True)
    (tmp_path / "store" / "blobs" / "x").write_bytes(data[:1000])
    store.put_immutable("blobs/x", data)
    assert store.get("blobs/x") == data
