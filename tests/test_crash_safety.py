"""Processes killed with SIGKILL while writing or locking leave a consistent store (R6).

Each trial builds a fresh store: a locked node L holding known data and its open child C.
A writer process (``tests/_workers.py``) writes into C, or writes and then locks C, and
is killed at a random instant or right after a chosen backend write. Then, in a fresh
:class:`~diced.DicedStore` and without any repair step:

* every object that existed before the writer started, except C's own mutable state, is
  byte-identical, and L reads exactly its known data;
* C reads without error, and its content is the writer's plan applied up to some write
  that had returned, plus, per chunk, the next write or not (never a torn chunk);
* locking C (again) succeeds and the locked node reads what the open one did.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _workers as w

from diced import AlreadyExistsError, DicedRepo, DicedStore, LockedError
from diced.versioning import keys

WORKERS = str(Path(__file__).parent / "_workers.py")
PLAN_LENGTH = 3000

Chunk = tuple[int, int, int]
T = TypeVar("T")


@dataclass(frozen=True)
class Setup:
    path: str
    repo: str
    locked: str
    child: str
    base: np.ndarray[Any, Any]
    files: dict[str, str]


def _chunk_slices(chunk: Chunk) -> tuple[slice, ...]:
    return tuple(slice(c * n, (c + 1) * n) for c, n in zip(chunk, w.CRASH_CHUNKS, strict=True))


ALL_CHUNKS: list[Chunk] = [
    (i, j, k) for i in range(w.CRASH_SHAPE[0] // w.CRASH_CHUNKS[0])
    for j in range(w.CRASH_SHAPE[1] // w.CRASH_CHUNKS[1])
    for k in range(w.CRASH_SHAPE[2] // w.CRASH_CHUNKS[2])
]


def _chunks_of(sel: tuple[slice, ...]) -> list[Chunk]:
    ranges = [range(s.start // n, (s.stop - 1) // n + 1)
              for s, n in zip(sel, w.CRASH_CHUNKS, strict=True)]
    return [(i, j, k) for i in ranges[0] for j in ranges[1] for k in ranges[2]]


def _snapshot(root: str) -> dict[str, str]:
    found = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if not rel.startswith(".diced-local/"):
                with open(full, "rb") as f:
                    found[rel] = hashlib.sha256(f.read()).hexdigest()
    return found


@contextmanager
def _repo(path: str, name: str | None = None, uuid: str | None = None
          ) -> Iterator[DicedRepo]:
    """A repo in a store opened afresh, as a new process would; the store is closed after."""
    with DicedStore(path) as store:
        yield store.open_repo(name, uuid=uuid)


def _setup(path: Path, seed: int) -> Setup:
    with DicedStore(str(path)) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("a", np.uint32, shape=w.CRASH_SHAPE, chunks=w.CRASH_CHUNKS)
        base, _, _ = w.lock_plan(seed + 10_000)  # chunk-constant data
        arr[...] = base
        repo.upload_filedata("readme.txt", b"the locked node")
        repo.lock_node("L")
        locked = repo.uuid
        child = repo.create_branch("C")
    return Setup(str(path), repo.repo_uuid, locked, child, base, _snapshot(str(path)))


def _check_untouched(setup: Setup) -> None:
    """Every pre-existing object but C's mutable state is intact; L reads its data."""
    mutable = (keys.node_record(setup.repo, setup.child),
               keys.open_node_prefix(setup.repo, setup.child))
    now = _snapshot(setup.path)
    changed = [k for k, d in setup.files.items()
               if not k.startswith(mutable) and now.get(k) != d]
    assert not changed, f"objects changed or vanished: {changed}"
    with _repo(setup.path, uuid=setup.locked) as repo:
        assert repo.locked
        assert np.array_equal(repo.get_array("a")[...], setup.base)
        assert repo.download_filedata("readme.txt") == b"the locked node"
        assert [n for n, _ in repo.list_instances()] == ["a"]


@dataclass
class Child:
    """A writer process and the stdout bytes read from it so far (read unbuffered, so
    nothing it printed is lost when the rest is collected after its death)."""

    proc: subprocess.Popen[bytes]
    received: bytes = b""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def finish(self) -> tuple[list[str], int, str]:
        """Wait for the process; all its stdout lines, its return code and its stderr."""
        out, err = self.proc.communicate(timeout=60)
        lines = (self.received + out).decode().splitlines()
        return lines, self.proc.returncode, err.decode()


def _start(command: str, **args: Any) -> Child:
    proc = subprocess.Popen([sys.executable, WORKERS, command, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return Child(proc)


def _wait_line(child: Child, expected: str, timeout: float = 60) -> None:
    """Wait until the child has printed the line ``expected`` (and nothing else before)."""
    assert child.proc.stdout is not None
    fd = child.proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while b"\n" not in child.received:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        data = os.read(fd, 65536) if ready else b""
        if not data:
            break
        child.received += data
    line = child.received.split(b"\n", 1)[0].decode() if b"\n" in child.received else ""
    if line != expected:
        child.kill()
        _, code, err = child.finish()
        pytest.fail(f"writer did not say {expected!r} (got {line!r}, exit {code}):\n{err}")


@pytest.fixture
def rng() -> Iterator[random.Random]:
    seed = random.randrange(2**32)
    print(f"crash-trial seed {seed}")
    yield random.Random(seed)


# -- killed while writing ----------------------------------------------------------------------


def _consistent_prefixes(base: np.ndarray[Any, Any], final: np.ndarray[Any, Any],
                         plan: list[tuple[tuple[slice, ...], int]], first: int, last: int
                         ) -> list[int]:
    """Each k in [first, last] such that ``final`` is the plan applied up to write k, plus
    write k+1 on some of its chunks (whole chunks only)."""
    model = base.copy()
    mismatch = {c for c in ALL_CHUNKS
                if not np.array_equal(final[_chunk_slices(c)], model[_chunk_slices(c)])}
    found = []
    for k in range(last + 1):
        if k >= first:
            touched = set(_chunks_of(plan[k][0])) if k < len(plan) else set()
            if mismatch <= touched:
                after = model.copy()
                if k < len(plan):
                    after[plan[k][0]] = plan[k][1]
                if all(np.array_equal(final[_chunk_slices(c)], after[_chunk_slices(c)])
                       for c in mismatch):
                    found.append(k)
        if k == len(plan):
            break
        sel, value = plan[k]
        model[sel] = value
        for c in _chunks_of(sel):
            s = _chunk_slices(c)
            if np.array_equal(final[s], model[s]):
                mismatch.discard(c)
            else:
                mismatch.add(c)
    return found


def _in_parallel(trial: Callable[..., T], calls: list[tuple[Any, ...]]) -> list[T]:
    """Run trials two or three at a time: each mostly waits for its writer process."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda args: trial(*args), calls))


def _crash_trial(path: Path, variant: str, trial_seed: int, kill_after: int | None) -> None:
    rng = random.Random(trial_seed)
    setup = _setup(path, rng.randrange(2**31))
    seed = rng.randrange(2**31)
    child = _start("crash-writer", path=setup.path, node=setup.child, seed=seed,
                   variant=variant, count=PLAN_LENGTH, kill_after=kill_after)
    _wait_line(child, "ready")
    if kill_after is None:
        time.sleep(rng.uniform(0.05, 0.5))
        child.kill()
    lines, code, err = child.finish()
    assert code == -signal.SIGKILL, f"writer exited with {code} before the kill:\n{err}"
    returned = max([int(x) for x in lines if x.isdigit()], default=0)

    with _repo(setup.path, "r") as repo:
        assert repo.uuid == setup.child and not repo.locked
        final = repo.get_array("a")[...]
    plan = w.crash_plan(seed, variant, PLAN_LENGTH)
    # Writes up to `returned` had returned; the kill may land after write returned+1
    # returned but before it was reported, or while it was partly written.
    prefixes = _consistent_prefixes(setup.base, final, plan, returned, returned + 1)
    assert prefixes, f"{variant} writer killed after {returned} writes (kill_after=" \
        f"{kill_after}): the node is not the plan applied up to a write, chunk by chunk"
    if variant == "full":
        k = prefixes[0]
        for c in ALL_CHUNKS:
            values = np.unique(final[_chunk_slices(c)])
            written = {int(setup.base[_chunk_slices(c)].flat[0])} | {
                v for sel, v in plan[:k + 1] if c in _chunks_of(sel)}
            assert len(values) == 1 and int(values[0]) in written, \
                f"chunk {c} is torn or holds a value never written there"

    with _repo(setup.path, "r") as repo:
        repo.lock_node("locked after a crash")
        assert repo.locked
        assert np.array_equal(repo.get_array("a")[...], final)
    _check_untouched(setup)


@pytest.mark.parametrize("variant", ["full", "partial"])
def test_writer_killed_at_a_random_instant(tmp_path: Path, variant: str,
                                           rng: random.Random) -> None:
    _in_parallel(_crash_trial, [(tmp_path / f"t{trial}", variant, rng.randrange(2**32), None)
                                for trial in range(12)])


@pytest.mark.parametrize("variant", ["full", "partial"])
def test_writer_killed_right_after_a_backend_write(tmp_path: Path, variant: str,
                                                   rng: random.Random) -> None:
    # Each chunk write is a blob write then a pointer write; odd counts stop in between.
    _in_parallel(_crash_trial, [(tmp_path / f"t{trial}", variant, rng.randrange(2**32), n)
                                for trial, n in enumerate(rng.sample(range(1, 120), 3))])


# -- killed while locking ----------------------------------------------------------------------


def _lock_trial(path: Path, trial_seed: int, kill_after: int | None,
                kill_delay: float | None) -> tuple[str, int, float]:
    """Run a lock writer; return C's state after it died, its lock mutations, lock time."""
    rng = random.Random(trial_seed)
    setup = _setup(path, rng.randrange(2**31))
    seed = rng.randrange(2**31)
    child = _start("lock-writer", path=setup.path, node=setup.child, seed=seed,
                   kill_after=kill_after)
    _wait_line(child, "locking", timeout=120)
    started = time.perf_counter()
    if kill_delay is not None:
        time.sleep(kill_delay)
        child.kill()
    lines, code, err = child.finish()
    elapsed = time.perf_counter() - started
    mutations = int(lines[-1].split()[1]) if lines[-1].startswith("locked ") else -1
    if kill_after is None and kill_delay is None:
        assert code == 0, err
    else:
        assert code in (0, -signal.SIGKILL), f"lock writer exited with {code}:\n{err}"

    a, b, blob = w.lock_plan(seed)
    with _repo(setup.path, uuid=setup.child) as repo:
        state = repo.node_record().state
        assert state in ("open", "sealing", "locked")
        # Every write returned before lock_node began: C holds them all, in any state.
        assert np.array_equal(repo.get_array("a")[...], a)
        assert np.array_equal(repo.get_array("b")[...], b)
        assert repo.download_filedata("notes.txt") == blob
        if state == "sealing":
            with pytest.raises(LockedError):
                repo.get_array("a")[0, 0, 0] = 1
        if state != "locked":
            repo.lock_node("completed after a crash")
        else:
            with pytest.raises(LockedError):
                repo.lock_node("again")
    with _repo(setup.path, uuid=setup.child) as repo:
        record = repo.node_record()
        assert record.state == "locked"
        if state != "locked":
            assert record.lock_message == "completed after a crash"
        assert np.array_equal(repo.get_array("a")[...], a)
        assert np.array_equal(repo.get_array("b")[...], b)
        assert repo.download_filedata("notes.txt") == blob
        assert sorted(n for n, _ in repo.list_instances()) == ["a", "b"]
        _check_untouched(setup)
        repo.change_version(repo.create_branch("after the crash"))
        assert np.array_equal(repo.get_array("b")[...], b)
    return state, mutations, elapsed


def test_killed_during_lock_node(tmp_path: Path, rng: random.Random) -> None:
    state, mutations, lock_time = _lock_trial(tmp_path / "calibrate", rng.randrange(2**32),
                                              None, None)
    assert state == "locked" and mutations > 0
    # Right after each backend write the lock makes (seal, index pages, manifest, record),
    # and at random instants around the lock.
    delays = [rng.uniform(0, 1.5 * lock_time) for _ in range(6)]
    results = _in_parallel(_lock_trial, [
        *[(tmp_path / f"w{n}", rng.randrange(2**32), n, None) for n in range(1, mutations + 1)],
        *[(tmp_path / f"r{i}", rng.randrange(2**32), None, d) for i, d in enumerate(delays)],
    ])
    labels = [f"after write {n}" for n in range(1, mutations + 1)] + \
        [f"at {d * 1000:.1f} ms" for d in delays]
    states = {label: state for label, (state, _, _) in zip(labels, results, strict=True)}
    assert states["after write 1"] == "sealing"
    assert states[f"after write {mutations}"] == "locked"
    print(f"lock of {mutations} backend writes took {lock_time * 1000:.1f} ms; "
          f"states after kills: {states}")


# -- killed while branching --------------------------------------------------------------------


@pytest.mark.parametrize("kill_after", [1, 2, 3])
def test_killed_during_create_branch(tmp_path: Path, kill_after: int,
                                     rng: random.Random) -> None:
    # create_branch writes the node record, then the branch claim, then the head hint.
    setup = _setup(tmp_path / "store", rng.randrange(2**31))
    child = _start("branch-writer", path=setup.path, node=setup.locked, name="side",
                   kill_after=kill_after)
    _wait_line(child, "branching")
    _, code, err = child.finish()
    assert code == -signal.SIGKILL, f"branch writer exited with {code}:\n{err}"

    with _repo(setup.path, "r") as repo:
        assert repo.uuid == setup.child  # master is untouched
        nodes = {n.uuid: n for n in repo.list_nodes()}
        side = [u for u, n in nodes.items() if n.branch == "side"]
        assert set(nodes) == {setup.locked, setup.child, *side} and len(side) <= 1
        repo.change_version(setup.locked)
        if side:  # the claim was written: the branch exists, and only once
            assert nodes[setup.locked].children == (setup.child, side[0])
            with pytest.raises(AlreadyExistsError):
                repo.create_branch("again", name="side")
        else:
            side = [repo.create_branch("again", name="side")]
        repo.change_version(":side")
        assert repo.uuid == side[0] and not repo.locked
        assert np.array_equal(repo.get_array("a")[...], setup.base)
        repo.get_array("a")[0, 0, 0] = 5
        repo.lock_node("side locked")
    _check_untouched(setup)
