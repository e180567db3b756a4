"""Entry points for the processes that diced's concurrency and crash tests start.

Two ways in:

* :func:`run_processes` starts functions of this module in ``spawn`` processes (each
  result, or the exception it raised, comes back as an :class:`Outcome`);
* ``python tests/_workers.py <command> <json args>`` runs a writer that the crash tests
  kill with SIGKILL (:func:`crash_writer`, :func:`lock_writer`, :func:`branch_writer`,
  :func:`merge_writer`),
  or that kills itself right after its n-th backend write. Such a child reports its
  progress on stdout, one line per completed step, so the parent knows which writes
  had returned before the kill.

Write plans are generated from a seed by functions here, so a parent can recompute
exactly what a killed child was writing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import numpy as np

from diced import (
    ConflictError,
    DicedException,
    DicedStore,
    LockedError,
)
from diced.backends import ObjectStore

CTX = mp.get_context("spawn")

Selection = tuple[slice, ...]


# -- running functions of this module in other processes --------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one worker process returned, or the exception it raised."""

    index: int
    value: Any = None
    error: str | None = None
    message: str = ""
    diced: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _entry(results: Any, index: int, name: str, args: tuple[Any, ...]) -> None:
    try:
        # ``module:function`` runs a function of another test helper module.
        module, _, func = name.rpartition(":")
        target = getattr(importlib.import_module(module), func) if module else globals()[name]
        value = target(*args)
    except BaseException as exc:
        detail = f"{exc}\n{traceback.format_exc()}"
        results.put((index, None, type(exc).__name__, detail, isinstance(exc, DicedException)))
    else:
        results.put((index, value, None, "", False))


def run_processes(calls: list[tuple[str, tuple[Any, ...]]], timeout: float = 120.0
                  ) -> list[Outcome]:
    """Run ``name(*args)`` for each call in its own spawned process; outcomes in call order.

    ``name`` is a function of this module, or ``module:function`` of another one.

    Every process must report within ``timeout`` seconds; a process that dies without
    reporting (or a timeout) fails the calling test with an ``AssertionError``.
    """
    results = CTX.Queue()
    procs = [CTX.Process(target=_entry, args=(results, i, name, args), daemon=True)
             for i, (name, args) in enumerate(calls)]
    outcomes: dict[int, Outcome] = {}
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        while len(outcomes) < len(procs):
            try:
                index, value, error, message, diced = results.get(timeout=0.5)
            except queue_mod.Empty:
                dead = [i for i, p in enumerate(procs)
                        if p.exitcode not in (None, 0) and i not in outcomes]
                assert not dead, f"worker(s) {dead} died without reporting " \
                    f"(exit codes {[procs[i].exitcode for i in dead]})"
                assert time.monotonic() < deadline, \
                    f"workers timed out after {timeout} s; reported: {sorted(outcomes)}"
                continue
            outcomes[index] = Outcome(index, value, error, message, diced)
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0, f"worker exited with code {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
            p.close()
        results.close()
        results.join_thread()
    return [outcomes[i] for i in range(len(procs))]


def _open_node(path: str, node: str) -> tuple[DicedStore, Any]:
    store = DicedStore(path)
    return store, store.open_repo(uuid=node)


# -- shared-chunk partial writers ------------------------------------------------------------

#: The array every partial writer shares: four 64³ chunks, each touched by every writer.
SHARED_SHAPE = (128, 128, 64)
SHARED_CHUNKS = (64, 64, 64)


def owned_selections(p: int, period: int) -> list[Selection]:
    """Strided selections covering exactly the voxels with ``(x + y + z) % period == p``.

    Each selection lies inside one chunk and holds a few hundred voxels: small partial
    writes, and every chunk is written by every writer.
    """
    nz, ny, nx = SHARED_SHAPE
    cz, cy, _ = SHARED_CHUNKS
    sels = []
    for zs in range(0, nz, cz):
        for ys in range(0, ny, cy):
            for rz in range(period):
                for ry in range(period):
                    z0 = zs + (rz - zs) % period
                    y0 = ys + (ry - ys) % period
                    x0 = (p - rz - ry) % period
                    sels.append((slice(z0, zs + cz, period), slice(y0, ys + cy, period),
                                 slice(x0, nx, period)))
    return sels


def partial_writer(path: str, node: str, p: int, period: int, barrier: Barrier) -> int:
    """Write ``p + 1`` at every voxel ``p`` owns, in shuffled small strided writes."""
    _, repo = _open_node(path, node)
    arr = repo.get_array("shared")
    sels = owned_selections(p, period)
    random.Random(p).shuffle(sels)
    barrier.wait()
    for sel in sels:
        arr[sel] = p + 1
    return len(sels)


def chunk_data(seed: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Reproducible random uint32 content for one chunk."""
    return np.random.default_rng(list(seed)).integers(1, 2**32, size=shape, dtype=np.uint32)


def chunk_writer(path: str, node: str, p: int, owned: list[tuple[int, int, int]],
                 chunks: tuple[int, int, int], rounds: int, barrier: Barrier) -> int:
    """Write each owned chunk ``rounds`` times, whole, with ``chunk_data((p, i, round))``."""
    _, repo = _open_node(path, node)
    arr = repo.get_array("disjoint")
    barrier.wait()
    for r in range(rounds):
        for i, c in enumerate(owned):
            sel = tuple(slice(ci * n, (ci + 1) * n) for ci, n in zip(c, chunks, strict=True))
            arr[sel] = chunk_data((p, i, r), chunks)
    return rounds * len(owned)


# -- read-your-writes across processes -------------------------------------------------------


def visibility_plan(count: int) -> list[tuple[Selection, int]]:
    """Alternating partial, single-voxel and whole-chunk writes with distinct values."""
    rng = random.Random(7)
    plan: list[tuple[Selection, int]] = []
    for i in range(count):
        if i % 3 == 0:
            c = rng.randrange(4)
            sel = (slice(64 * (c // 2), 64 * (c // 2) + 64),
                   slice(64 * (c % 2), 64 * (c % 2) + 64), slice(0, 64))
        elif i % 3 == 1:
            z, y, x = rng.randrange(128), rng.randrange(128), rng.randrange(64)
            sel = (slice(z, z + 1), slice(y, y + 1), slice(x, x + 1))
        else:
            z, y = rng.randrange(120), rng.randrange(100)
            sel = (slice(z, z + 5), slice(y, y + 20, 3), slice(1, 64, 7))
        plan.append((sel, 1000 + i))
    return plan


def visibility_writer(path: str, node: str, count: int, to_reader: Any, acks: Any) -> int:
    """Create the array, then one write at a time: write, tell the reader, wait for its ack."""
    _, repo = _open_node(path, node)
    arr = repo.create_array("seen", np.uint32, shape=SHARED_SHAPE, chunks=SHARED_CHUNKS)
    to_reader.put("created")
    acks.get(timeout=60)
    for i, (sel, value) in enumerate(visibility_plan(count)):
        arr[sel] = value
        to_reader.put(i)
        acks.get(timeout=60)
    return count


def visibility_reader(path: str, node: str, count: int, from_writer: Any, acks: Any
                      ) -> list[str]:
    """Check every announced write through an old handle, a new one and a new store."""
    _, repo = _open_node(path, node)  # opened before the array exists
    problems = []
    assert from_writer.get(timeout=60) == "created"
    arr = repo.get_array("seen")
    acks.put("ok")
    plan = visibility_plan(count)
    for _ in range(count):
        i = from_writer.get(timeout=60)
        sel, value = plan[i]
        with DicedStore(path) as store:
            fresh = store.open_repo(uuid=node).get_array("seen")
            for label, handle in (("held handle", arr), ("fresh store", fresh)):
                got = handle[sel]
                if not np.all(got == value):
                    problems.append(f"write {i} at {sel}: {label} read {np.unique(got)[:5]}, "
                                    f"expected {value}")
        acks.put("ok")
    return problems


# -- racing one-winner operations ------------------------------------------------------------


def race_lock(path: str, node: str, p: int, barrier: Barrier) -> str:
    _, repo = _open_node(path, node)
    barrier.wait()
    repo.lock_node(f"locked by racer {p}")
    return repo.uuid


def race_branch(path: str, node: str, p: int, name: str | None, barrier: Barrier) -> str:
    _, repo = _open_node(path, node)
    barrier.wait()
    return str(repo.create_branch(f"branch by racer {p}", name=name))


def race_create_array(path: str, node: str, p: int, barrier: Barrier) -> str:
    _, repo = _open_node(path, node)
    barrier.wait()
    arr = repo.create_array("raced", np.uint16, shape=(64, 64, 64 + p), chunks=(32, 32, 32))
    arr[0, 0, 0] = p + 1
    return f"racer {p}"


# -- writers racing a lock -------------------------------------------------------------------


def lock_race_regions(w: int) -> tuple[Selection, Selection]:
    """Writer ``w``'s own whole chunk and its own slab of the chunk all writers share."""
    cz, cy = w // 2, w % 2
    own = (slice(64 * cz, 64 * cz + 64), slice(64 * cy, 64 * cy + 64), slice(0, 64))
    shared = (slice(64, 128), slice(64, 128), slice(20 * w, 20 * w + 20))
    return own, shared


def writer_until_locked(path: str, node: str, w: int, barrier: Barrier, started: Event
                        ) -> dict[str, tuple[int, int | None]]:
    """Write value k (k = 1, 2, ...) to both regions until the node refuses writes.

    Returns, per region, ``(last k whose write returned, k that raised ConflictError or
    None)``. Any other exception propagates and fails the test.
    """
    _, repo = _open_node(path, node)
    arr = repo.get_array("a")
    own, shared = lock_race_regions(w)
    state = {"own": (0, None), "shared": (0, None)}
    barrier.wait()
    for k in range(1, 100_000):
        for region, sel in (("own", own), ("shared", shared)):
            try:
                arr[sel] = k
            except ConflictError:
                state[region] = (state[region][0], k)
            except LockedError:
                return state
            else:
                assert state[region][1] is None, "a write succeeded after a ConflictError"
                state[region] = (k, None)
        if k == 5:
            started.set()
    raise AssertionError("the node was never locked")


def locker(path: str, node: str, barrier: Barrier, writers_started: list[Event]
           ) -> tuple[str, float]:
    """Lock the node once every writer is writing; return the locked content digest."""
    _, repo = _open_node(path, node)
    barrier.wait()
    for ev in writers_started:
        assert ev.wait(60), "a writer never started"
    time.sleep(random.uniform(0.05, 0.3))
    t0 = time.perf_counter()
    repo.lock_node("locked while writers write")
    elapsed = time.perf_counter() - t0
    data = repo.get_array("a")[...]
    return hashlib.sha256(data.tobytes()).hexdigest(), elapsed


# -- crash tests: writers killed by the parent -----------------------------------------------

#: The array of the crash tests: 27 chunks of 32³.
CRASH_SHAPE = (96, 96, 96)
CRASH_CHUNKS = (32, 32, 32)
#: The second array the lock writer fills: 512 chunks of 16³, so a lock has work to do.
LOCK_SHAPE = (128, 128, 128)
LOCK_CHUNKS = (16, 16, 16)


def crash_plan(seed: int, variant: str, count: int) -> list[tuple[Selection, int]]:
    """``count`` writes of one value each.

    ``"full"``: boxes of 1-2 whole chunks per axis (a write covers up to 8 chunks);
    ``"partial"``: boxes with arbitrary bounds, mostly cutting through chunks.
    """
    rng = random.Random(seed)
    plan: list[tuple[Selection, int]] = []
    for _ in range(count):
        sel = []
        for n, c in zip(CRASH_SHAPE, CRASH_CHUNKS, strict=True):
            if variant == "full":
                a = rng.randrange(n // c)
                b = rng.randrange(a + 1, min(n // c, a + 2) + 1)
                sel.append(slice(a * c, b * c))
            else:
                a = rng.randrange(n)
                b = rng.randrange(a + 1, min(n, a + 40) + 1)
                sel.append(slice(a, b))
        plan.append((tuple(sel), rng.randrange(1, 2**32)))
    return plan


def lock_plan(seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], bytes]:
    """What :func:`lock_writer` writes: array ``a``, new array ``b`` and a file's bytes.

    Values are constant per chunk, so a chunk read back is recognisable.
    """
    rng = np.random.default_rng(seed)
    grid_a = tuple(n // c for n, c in zip(CRASH_SHAPE, CRASH_CHUNKS, strict=True))
    grid_b = tuple(n // c for n, c in zip(LOCK_SHAPE, LOCK_CHUNKS, strict=True))
    a = rng.integers(1, 2**32, size=grid_a, dtype=np.uint32)
    b = rng.integers(1, 2**32, size=grid_b, dtype=np.uint32)
    for axis, c in enumerate(CRASH_CHUNKS):
        a = np.repeat(a, c, axis=axis)
    for axis, c in enumerate(LOCK_CHUNKS):
        b = np.repeat(b, c, axis=axis)
    return a, b, f"file of seed {seed}".encode()


def _arm_kill(backend: ObjectStore, after: int) -> list[int]:
    """SIGKILL this process right after the ``after``-th mutating backend call returns."""
    count = [0]
    for name in ("put", "put_if_absent", "put_immutable", "put_if_match", "compare_and_swap",
                 "delete"):
        original: Callable[..., Any] = getattr(backend, name)

        def wrapped(*args: Any, _original: Callable[..., Any] = original) -> Any:
            result = _original(*args)
            count[0] += 1
            if count[0] == after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(backend, name, wrapped)
    return count


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def crash_writer(path: str, node: str, seed: int, variant: str, count: int,
                 kill_after: int | None) -> None:
    """Apply ``crash_plan(seed, variant, count)`` to array ``a`` of ``node``.

    Prints ``ready`` once open, then the number of each write after it returned.
    With ``kill_after`` the process kills itself after that many backend mutations.
    """
    store, repo = _open_node(path, node)
    arr = repo.get_array("a")
    plan = crash_plan(seed, variant, count)
    if kill_after is not None:
        _arm_kill(store.backend, kill_after)
    _say("ready")
    for k, (sel, value) in enumerate(plan, 1):
        arr[sel] = value
        _say(str(k))
    _say("done")


def lock_writer(path: str, node: str, seed: int, kill_after: int | None) -> None:
    """Write ``lock_plan(seed)`` (array ``a``, new array ``b``, a file), then lock ``node``.

    Prints ``locking`` just before ``lock_node`` and ``locked <mutations>`` after it,
    where mutations counts the backend writes the lock made. ``kill_after`` kills the
    process after that many backend mutations inside ``lock_node``.
    """
    store, repo = _open_node(path, node)
    a, b, blob = lock_plan(seed)
    repo.get_array("a")[...] = a
    repo.create_array("b", np.uint32, shape=LOCK_SHAPE, chunks=LOCK_CHUNKS)[...] = b
    repo.upload_filedata("notes.txt", blob)
    count = _arm_kill(store.backend, kill_after if kill_after is not None else -1)
    count[0] = 0
    _say("locking")
    repo.lock_node("locked by the lock writer")
    _say(f"locked {count[0]}")


def branch_writer(path: str, node: str, name: str, kill_after: int) -> None:
    """Create branch ``name`` from locked ``node``, killed after ``kill_after`` backend
    writes; prints ``branching`` before and ``branched <uuid>`` after ``create_branch``."""
    store, repo = _open_node(path, node)
    _arm_kill(store.backend, kill_after)
    _say("branching")
    _say(f"branched {repo.create_branch('killed while branching', name=name)}")


def merge_writer(path: str, repo: str, versions: list[str], kill_after: int | None) -> None:
    """Merge ``versions`` of repo ``repo`` into branch ``merged`` (``ours`` resolves).

    Prints ``merging`` just before ``merge`` and ``merged <uuid> <mutations>`` after it;
    ``kill_after`` kills the process after that many backend mutations inside ``merge``.
    """
    store = DicedStore(path)
    handle = store.open_repo(repo)
    count = _arm_kill(store.backend, kill_after if kill_after is not None else -1)
    count[0] = 0
    _say("merging")
    merged = handle.merge(versions, "merged by the merge writer", name="merged",
                          on_conflict="ours", progress=False)
    _say(f"merged {merged} {count[0]}")


def _main(argv: list[str]) -> None:
    commands: dict[str, Callable[..., None]] = {
        "crash-writer": crash_writer,
        "lock-writer": lock_writer,
        "branch-writer": branch_writer,
        "merge-writer": merge_writer,
    }
    commands[argv[0]](**json.loads(argv[1]))


if __name__ == "__main__":
    _main(sys.argv[1:])

