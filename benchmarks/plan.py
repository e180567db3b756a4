"""How big and how often: the benchmark plan, and where a run keeps its files."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["FULL", "QUICK", "Layout", "Plan", "Task"]


@dataclass(frozen=True)
class Plan:
    """Sizes and repetition counts of one benchmark run.

    Every array is a cube of edge ``size`` with cubic chunks of edge ``chunk`` (the pyramid
    workload's of edge ``pyramid_size``, where ``pyramid_edits`` chunks are edited). Each figure
    in the table is the median over ``reps`` repetitions, each in a fresh process (the
    history chain is built once; its lock, commit and branch times are the median of
    ``reps`` probes at each depth). ``gc_chunks`` is how many chunks the garbage
    collection benchmark writes (its store holds about 2.7 objects per chunk).
    """

    size: int
    chunk: int
    aligned_reads: int
    unaligned_reads: int
    unaligned_edge: int
    rmw_writes: int
    rmw_edge: int
    depths: tuple[int, ...]
    depth_reads: int
    pyramid_size: int
    pyramid_edits: int
    reps: int
    gc_chunks: int = 40_000
    diff_sizes: tuple[int, ...] = ()
    diff_changed: int = 0
    merge_changed: int = 0
    seed: int = 2024

    def with_reps(self, reps: int | None) -> Plan:
        """This plan with ``reps`` repetitions (unchanged when ``reps`` is None)."""
        return self if reps is None else replace(self, reps=reps)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(**{**data, "depths": tuple(data["depths"]),
                      "diff_sizes": tuple(data["diff_sizes"])})


#: The issue's plan: 512³ volumes, 1000 random reads of each kind, history depth 1000, a
#: pyramid over 1024³ updated after a 10-chunk edit, diffs of arrays with 10⁴-10⁶ stored
#: chunks differing in 1000, a merge of 2 × 100 chunks.
FULL = Plan(size=512, chunk=64, aligned_reads=1000, unaligned_reads=1000, unaligned_edge=100,
            rmw_writes=200, rmw_edge=10, depths=(1, 100, 1000), depth_reads=200,
            pyramid_size=1024, pyramid_edits=10, reps=5,
            diff_sizes=(10_000, 100_000, 1_000_000), diff_changed=1000, merge_changed=100)

#: A smoke test of the harness (numbers are meaningless): tiny sizes, one repetition.
QUICK = Plan(size=128, chunk=64, aligned_reads=20, unaligned_reads=20, unaligned_edge=100,
             rmw_writes=20, rmw_edge=10, depths=(1, 5), depth_reads=10, pyramid_size=256,
             pyramid_edits=10, reps=1, gc_chunks=400, diff_sizes=(1000, 4000),
             diff_changed=50, merge_changed=4)


@dataclass(frozen=True)
class Layout:
    """Paths below a run's working directory (all on the same local disk).

    ``data/`` holds the generated volumes as ``.npy`` (and, for the import workload, as a
    TIFF stack in ``data/<array>-tiff/``); ``prepared/<system>/<array>`` the
    store each system wrote in its last bulk-write repetition, which the read, write and
    history workloads start from; ``diff/<system>/<chunks>`` the two versions a diff
    compares; ``scratch/`` per-task copies, removed after each task.
    """

    root: Path

    def data(self, array: str) -> Path:
        return self.root / "data" / f"{array}.npy"

    def tiff_stack(self, array: str) -> Path:
        return self.root / "data" / f"{array}-tiff"

    def prepared(self, system: str, array: str) -> Path:
        return self.root / "prepared" / system / array

    def history(self, system: str) -> Path:
        return self.root / "history" / system

    def diff(self, system: str, stored: int) -> Path:
        return self.root / "diff" / system / str(stored)

    def scratch(self, system: str, workload: str, rep: int) -> Path:
        return self.root / "scratch" / f"{system}-{workload}-{rep}"

    @property
    def discarded(self) -> Path:
        """Where :meth:`discard` moves stores; the runner deletes it when the run ends."""
        return self.root / "discarded"

    def discard(self, path: Path) -> None:
        """Move the store (or any tree) ``path`` out of the way, if it exists.

        It is renamed, not deleted: on an ext4 without a journal (this benchmark's own
        machine) every new inode skips those freed in the last 1-6 minutes, probing the
        inode table for each, so deleting one task's store made the next task's file
        creations pay for it, in proportion to the files each system creates. Deleting
        them all after the last task keeps that cost out of every figure.
        """
        if path.exists():
            self.discarded.mkdir(parents=True, exist_ok=True)
            path.rename(self.discarded / uuid.uuid4().hex)


@dataclass(frozen=True)
class Task:
    """One unit of work for one worker process: a workload on a system, one repetition.

    ``array`` names the volume for the bulk workloads; ``keep`` makes a bulk write leave
    its store in ``layout.prepared(...)`` for the workloads that follow; ``depth`` is the
    history depth a history read measures; ``stored`` the stored chunks of a diff's array.
    """

    workload: str
    system: str
    rep: int
    plan: Plan
    workdir: Path
    array: str = "image"
    keep: bool = False
    depth: int = 0
    stored: int = 0

    @property
    def layout(self) -> Layout:
        return Layout(self.workdir)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plan": self.plan.to_json(), "workdir": str(self.workdir)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        return cls(**{**data, "plan": Plan.from_json(data["plan"]),
                      "workdir": Path(data["workdir"])})
