"""Concurrent writers, both write paths, threads and processes, with locks racing (kit c).

A Hypothesis state machine drives four writers (two threads, two processes; two through
DicedArray, two through zarr on the repo's Store) that increment the voxels they own
inside chunks they all share, sometimes while the main thread locks the node. A model
holds, per writer, how many of its writes returned. Invariants: no update that returned
is lost (and nothing is applied twice); a lock that raced writes holds, per voxel,
between the writes that returned and those plus the one that saw the lock; every locked
version reads forever the same, through both paths.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from _zarr_workers import MACHINE_CHUNKS, MACHINE_SHAPE, increment_rows, serve_writer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from diced import DicedStore

WRITERS = 4
#: writer → (runs in a process, write path)
KINDS = [(False, "diced"), (False, "zarr"), (True, "zarr"), (True, "diced")]
CTX = mp.get_context("spawn")


class Writers:
    """Two writer threads and two persistent writer processes on one store location."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.procs: dict[int, tuple[Any, Any, Any]] = {}
        for p, (in_process, _) in enumerate(KINDS):
            if in_process:
                commands, results = CTX.Queue(), CTX.Queue()
                proc = CTX.Process(target=serve_writer, args=(location, commands, results),
                                   daemon=True)
                proc.start()
                self.procs[p] = (proc, commands, results)

    def run(self, node: str, rounds: int, during: Callable[[], None] | None = None
            ) -> list[tuple[int, int, int]]:
        """Every writer does ``rounds`` increments at once; ``during`` runs meanwhile."""
        outcomes: dict[int, tuple[int, int, int]] = {}
        threads = []
        for p, (in_process, path) in enumerate(KINDS):
            args = (node, p, WRITERS, rounds, path)
            if in_process:
                self.procs[p][1].put(args)
            else:
                def work(p: int = p, args: tuple[Any, ...] = args) -> None:
                    outcomes[p] = increment_rows(self.location, *args)

                threads.append(threading.Thread(target=work))
                threads[-1].start()
        if during is not None:
            during()
        for thread in threads:
            thread.join(timeout=120)
        for p, (_, _, results) in self.procs.items():
            status, value = results.get(timeout=120)
            assert status == "ok", value
            outcomes[p] = tuple(value)
        return [outcomes[p] for p in range(WRITERS)]

    def close(self) -> None:
        for proc, commands, _ in self.procs.values():
            commands.put(None)
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def owned(p: int) -> np.ndarray[Any, Any]:
    mask = np.zeros(MACHINE_SHAPE, bool)
    mask[p::WRITERS, :] = True
    return mask


class MultiWriterMachine(RuleBasedStateMachine):
    location: str = ""

    @initialize()
    def start(self) -> None:
        self.store = DicedStore(self.location)
        repo = self.store.create_repo(f"m{uuid.uuid4().hex}")
        repo.create_array("m", np.int32, shape=MACHINE_SHAPE, chunks=MACHINE_CHUNKS)
        self.repo_name = repo.name
        self.node = repo.uuid
        self.expected = np.zeros(MACHINE_SHAPE, np.int32)
        self.frozen: dict[str, np.ndarray[Any, Any]] = {}
        self.writers = Writers(self.location)

    def teardown(self) -> None:
        if hasattr(self, "writers"):
            self.writers.close()
            self.store.close()

    def _read(self, node: str, path: str = "diced") -> np.ndarray[Any, Any]:
        repo = self.store.open_repo(uuid=node)
        if path == "diced":
            return np.asarray(repo.get_array("m")[...])
        return np.asarray(zarr.open_array(repo.zarr_store(), path="m", mode="r")[...])

    def _branch(self, parent: str) -> None:
        repo = self.store.open_repo(uuid=parent)
        self.node = repo.create_branch("next", name=f"b{len(self.frozen)}")
        self.expected = self.frozen[parent].copy()

    @rule(rounds=st.integers(1, 4))
    def write(self, rounds: int) -> None:
        outcomes = self.writers.run(self.node, rounds)
        for p, (landed, maybe, refused) in enumerate(outcomes):
            assert (landed, maybe, refused) == (rounds, 0, 0), (p, outcomes)
            self.expected[owned(p)] += landed
        assert np.array_equal(self._read(self.node), self.expected)

    @rule(rounds=st.integers(2, 6), delay=st.floats(0, 0.05))
    def write_while_locking(self, rounds: int, delay: float) -> None:
        node = self.node

        def lock() -> None:
            time.sleep(delay)
            self.store.open_repo(uuid=node).lock_node("raced")

        outcomes = self.writers.run(node, rounds, during=lock)
        locked = self._read(node)
        for p, (landed, maybe, _) in enumerate(outcomes):
            low = self.expected[owned(p)] + landed
            got = locked[owned(p)]
            assert np.all(got >= low) and np.all(got <= low + maybe), (p, outcomes)
        self.frozen[node] = locked
        self._branch(node)

    @rule()
    def lock_and_branch(self) -> None:
        self.store.open_repo(uuid=self.node).lock_node("quiet")
        self.frozen[self.node] = self._read(self.node)
        assert np.array_equal(self.frozen[self.node], self.expected)
        self._branch(self.node)

    @invariant()
    def locked_versions_never_change(self) -> None:
        if not hasattr(self, "frozen"):
            return
        for node, content in self.frozen.items():
            assert np.array_equal(self._read(node, "diced"), content)
            assert np.array_equal(self._read(node, "zarr"), content)


@pytest.mark.slow
def test_multi_writer_machine(tmp_path: Path) -> None:
    at_location = type("LocalMultiWriterMachine", (MultiWriterMachine,),
                       {"location": str(tmp_path / "store")})
    machine = settings(max_examples=6, stateful_step_count=6, deadline=None,
                       suppress_health_check=list(HealthCheck))(at_location)
    machine.TestCase().runTest()

