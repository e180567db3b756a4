"""``ChunkAccess.run``: the pool's threads and the calling thread share the chunk work.

Every item runs exactly once, on at most ``concurrency`` threads counting the caller; after
a failure no further item starts, and every item that started has finished when the
failure is raised (so a write that raised never lands afterwards).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from diced import DicedArray, DicedStore


@pytest.fixture
def array(tmp_path: Path) -> Iterator[DicedArray]:
    with DicedStore(str(tmp_path), concurrency=3) as store:
        yield store.create_repo("r").create_array("a", "uint8", shape=(8, 8), chunks=(4, 4))


def test_every_item_runs_once_on_the_pool_and_in_the_caller(array: DicedArray) -> None:
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(item: int) -> None:
        time.sleep(0.002)  # long enough that every thread gets items
        with lock:
            seen.append((item, threading.current_thread().name))

    array._access.run(work, range(60))
    assert sorted(item for item, _ in seen) == list(range(60))
    threads = {name for _, name in seen}
    assert threading.current_thread().name in threads  # the caller worked too
    assert len(threads) <= 3  # concurrency=3: the caller and two of the pool's threads


def test_after_a_failure_no_item_starts_and_every_started_one_finishes(
        array: DicedArray) -> None:
    started: list[int] = []
    finished: list[int] = []

    def work(item: int) -> None:
        started.append(item)
        if item == 0:
            raise OSError("disk gone")
        time.sleep(0.005)
        finished.append(item)

    with pytest.raises(OSError, match="disk gone"):
        array._access.run(work, range(200))
    assert sorted(started) == sorted([0, *finished])  # nothing still running
    assert len(started) < 200  # the failure stopped the rest


def test_an_interrupt_in_the_caller_stops_the_pool_too(array: DicedArray) -> None:
    caller = threading.current_thread()
    started: list[int] = []
    finished: list[int] = []

    def work(item: int) -> None:
        started.append(item)
        if threading.current_thread() is caller and len(started) > 3:
            raise KeyboardInterrupt
        time.sleep(0.005)
        finished.append(item)

    with pytest.raises(KeyboardInterrupt):
        array._access.run(work, range(200))
    interrupted = set(started) - set(finished)
    assert len(interrupted) == 1  # only the caller's item; the others all finished
    assert len(started) < 200
