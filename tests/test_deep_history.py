"""A 1000-step lock-and-branch chain on local disk: it opens, logs and reads at any depth.

Also checks the design promise that locking and branching cost does not grow with
history: the number of object-store calls one step makes is the same at depth 1000 as at
depth 1, and it reports the measured times per step.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diced import DicedStore
from diced.backends import ObjectStore

DEPTH = 1000
WRITE_EVERY = 50
SHAPE, CHUNKS = (96, 32, 32), (16, 32, 32)


def _count_calls(backend: ObjectStore) -> Counter[str]:
    """Count the backend's primitive calls, by name, from now on."""
    calls: Counter[str] = Counter()
    for name in ("get", "get_range", "put", "put_if_absent", "compare_and_swap", "delete",
                 "list_prefix"):
        original: Callable[..., Any] = getattr(backend, name)

        def counted(*args: Any, _original: Callable[..., Any] = original,
                    _name: str = name) -> Any:
            calls[_name] += 1
            return _original(*args)

        setattr(backend, name, counted)
    return calls


def _write(depth: int) -> tuple[tuple[int, slice, slice], int]:
    """The small change made at ``depth``: one plane of one chunk (chunks are revisited)."""
    step = depth // WRITE_EVERY
    z = (step % 6) * CHUNKS[0] + step % CHUNKS[0]
    return (z, slice(3, 29), slice(step, step + 5)), depth + 1


def _expected(depth: int) -> np.ndarray[Any, Any]:
    data = np.zeros(SHAPE, dtype=np.uint32)
    for d in range(0, depth + 1):
        if d % WRITE_EVERY == 0:
            sel, value = _write(d)
            data[sel] = value
    return data


def test_thousand_step_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    store = DicedStore(path)
    repo = store.create_repo("deep")
    repo.create_array("a", np.uint32, shape=SHAPE, chunks=CHUNKS)
    calls = _count_calls(store.backend)
    chain = [repo.uuid]
    lock_times, branch_times = [], []
    lock_calls, branch_calls = [], []
    started = time.perf_counter()
    for depth in range(DEPTH):
        if depth % WRITE_EVERY == 0:
            sel, value = _write(depth)
            repo.get_array("a")[sel] = value
        calls.clear()
        t0 = time.perf_counter()
        repo.lock_node(f"step {depth}")
        t1 = time.perf_counter()
        lock_calls.append(sum(calls.values()))
        calls.clear()
        child = repo.create_branch(f"branch {depth}")
        t2 = time.perf_counter()
        branch_calls.append(sum(calls.values()))
        repo.change_version(child)
        lock_times.append(t1 - t0)
        branch_times.append(t2 - t1)
        chain.append(child)
    sel, value = _write(DEPTH)
    repo.get_array("a")[sel] = value
    build = time.perf_counter() - started

    def ms(xs: list[float]) -> str:
        return f"median {statistics.median(xs) * 1000:.2f} ms"

    print(f"\nbuilt {DEPTH} steps in {build:.1f} s; lock at depth 1-10: "
          f"{ms(lock_times[:10])}, at 991-1000: {ms(lock_times[-10:])}; branch at depth "
          f"1-10: {ms(branch_times[:10])}, at 991-1000: {ms(branch_times[-10:])}; backend "
          f"calls per lock {lock_calls[1]} -> {lock_calls[-1]}, per branch "
          f"{branch_calls[1]} -> {branch_calls[-1]}")
    # Steps without a write, early and late in the chain, touch the store equally often.
    quiet = [d for d in range(DEPTH) if d % WRITE_EVERY]
    assert max(lock_calls[d] for d in quiet if d > DEPTH - 50) <= \
        max(lock_calls[d] for d in quiet if d < 50)
    assert max(branch_calls[-50:]) <= max(branch_calls[:50])

    reopened = DicedStore(path)
    t0 = time.perf_counter()
    leaf = reopened.open_repo("deep")
    open_time = time.perf_counter() - t0
    assert leaf.uuid == chain[-1] and not leaf.locked
    t0 = time.perf_counter()
    log = leaf.get_commit_log()
    log_time = time.perf_counter() - t0
    assert [u for u, _ in log] == chain
    assert [m for _, m in log] == [f"step {d}" for d in range(DEPTH)] + ["(open node)"]
    print(f"open_repo by name {open_time * 1000:.1f} ms, get_commit_log {log_time:.2f} s")

    for depth in (1, 500, DEPTH):
        at = reopened.open_repo(uuid=chain[depth])
        assert at.locked == (depth < DEPTH)
        assert np.array_equal(at.get_array("a")[...], _expected(depth)), f"depth {depth}"
    assert np.array_equal(leaf.get_array("a")[...], _expected(DEPTH))

    leaf.change_version(chain[0])
    assert leaf.uuid == chain[0] and leaf.locked
    assert np.array_equal(leaf.get_array("a")[...], _expected(0))
    assert leaf.get_commit_log() == [(chain[0], "step 0")]
    reopened.close()
    store.close()
