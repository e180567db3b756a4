"""The catalogue of figures: what each workload reports, for which systems, in which unit.

The runner uses it to check that every worker reported what it owes, and to put a row in
the table (with a note) for a system that is not installed or a task that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.data import ARRAYS
from benchmarks.plan import Plan

__all__ = ["ALL_SYSTEMS", "DIFFING", "IMPORTING", "LIFECYCLE", "MERGING", "PYRAMIDS",
           "WORKLOADS", "Measure", "catalogue"]

ALL_SYSTEMS = ("diced-open", "diced-locked", "zarr", "tensorstore", "icechunk")
_COMMITTING = ("diced-locked", "icechunk")
_BRANCHING = ("diced-open", "diced-locked", "icechunk")
#: Systems with a diff of two versions (diced's of locked versions) and with a merge.
DIFFING = ("diced-locked", "icechunk")
MERGING = ("diced-locked",)
#: Systems with a TIFF-stack importer (diced's own; zarr fed slab by slab by tifffile).
IMPORTING = ("diced-open", "zarr")
#: Systems that keep pyramids per version (diced's own, updated in an open node).
PYRAMIDS = ("diced-open",)

#: Workloads selectable with ``--workloads``, in the order they run.
WORKLOADS = ("bulk-write", "bulk-read", "random-reads", "rmw", "branch-bytes", "history",
             "import", "pyramid", "lifecycle", "diff", "merge")
#: The storage lifecycle (garbage collection, copies) is diced's alone.
LIFECYCLE = ("diced-locked",)


@dataclass(frozen=True)
class Measure:
    """One figure of the table, for each of ``systems``.

    ``key`` is what a worker reports it under; ``group`` is the table's workload column
    and ``label`` its measure column. ``task`` is the worker workload that produces it.
    """

    key: str
    task: str
    group: str
    label: str
    unit: str
    higher_is_better: bool
    systems: tuple[str, ...] = ALL_SYSTEMS


def catalogue(plan: Plan) -> list[Measure]:
    """Every figure a run of ``plan`` reports, in table order."""
    n, c = plan.size, plan.chunk
    out: list[Measure] = []
    for name, dtype in ARRAYS.items():
        volume = f"{name} {n}³ {dtype}"
        out += [
            Measure(f"write.{name}.throughput", "bulk-write", f"bulk write · {volume}",
                    "throughput (incl. lock/commit)", "GB/s", True),
            Measure(f"write.{name}.stored", "bulk-write", f"bulk write · {volume}",
                    "size on disk", "MB", False),
            Measure(f"read.{name}.throughput", "bulk-read", f"bulk read · {volume}",
                    "throughput", "GB/s", True),
        ]
    for name, dtype in ARRAYS.items():
        group = f"memory · read all of {name} {n}³ ({n**3 * dtype.itemsize / 1e6:.0f} MB)"
        out += [
            Measure(f"read.{name}.peak_rss", "bulk-read", group, "peak RSS of the process",
                    "MB", False),
            Measure(f"read.{name}.peak_increase", "bulk-read", group,
                    "peak RSS increase during the read", "MB", False),
        ]
    for kind, edge in (("aligned", c), ("unaligned", plan.unaligned_edge)):
        count = plan.aligned_reads if kind == "aligned" else plan.unaligned_reads
        where = "chunk-aligned" if kind == "aligned" else "unaligned"
        group = f"random reads · {count} × {edge}³ {where}"
        out += [
            Measure(f"reads.{kind}.median", "random-reads", group, "latency median", "ms",
                    False),
            Measure(f"reads.{kind}.p90", "random-reads", group, "latency p90", "ms", False),
        ]
    group = f"random writes · {plan.rmw_writes} × {plan.rmw_edge}³ unaligned (read-modify-write)"
    out += [
        Measure("rmw.median", "rmw", group, "latency median", "ms", False),
        Measure("rmw.p90", "rmw", group, "latency p90", "ms", False),
        Measure("rmw.commit", "rmw", group, "lock / commit after the writes", "ms", False,
                _COMMITTING),
        Measure("branch.bytes", "branch-bytes", f"branch + one-chunk edit · image {n}³",
                "bytes added to the store", "KB", False, _BRANCHING),
    ]
    for depth in plan.depths:
        group = f"history depth {depth}"
        out += [
            Measure(f"history.{depth}.commit", "history", group,
                    "lock / commit of a one-chunk edit", "ms", False, _COMMITTING),
            Measure(f"history.{depth}.branch", "history", group, "branch, ready to write",
                    "ms", False, _COMMITTING),
            Measure(f"history.{depth}.open", "history-reads", group, "open the version",
                    "ms", False, _BRANCHING),
            Measure(f"history.{depth}.read", "history-reads", group,
                    f"{c}³ chunk read, median of {plan.depth_reads}", "ms", False,
                    _BRANCHING),
        ]
    group = f"import · TIFF stack of image {n}³ uint8 ({n} slices)"
    out += [
        Measure("import.throughput", "import", group, "throughput (reading the TIFFs included)",
                "GB/s", True, IMPORTING),
        Measure("import.peak_increase", "import", group, "peak RSS increase during the import",
                "MB", False, IMPORTING),
    ]
    p = plan.pyramid_size
    group = f"pyramid · image {p}³ uint8, {c}³ chunks, {plan.pyramid_edits}-chunk edit"
    out += [
        Measure("pyramid.update", "pyramid", group, "update_pyramid after the edit", "ms",
                False, PYRAMIDS),
        Measure("pyramid.update_chunks", "pyramid", group,
                "level chunks rewritten by the update", "chunks", False, PYRAMIDS),
        Measure("pyramid.rebuild", "pyramid", group, "build the pyramid from scratch", "ms",
                False, PYRAMIDS),
        Measure("pyramid.rebuild_chunks", "pyramid", group,
                "level chunks written by the build", "chunks", False, PYRAMIDS),
    ]
    group = (f"gc · {plan.gc_chunks} chunks in two versions, every object older than the "
             "grace period")
    out += [
        Measure("gc.objects", "lifecycle", group, "objects in the store", "objects", True,
                LIFECYCLE),
        Measure("gc.garbage", "lifecycle", group, "unreachable objects moved or deleted",
                "objects", True, LIFECYCLE),
        Measure("gc.first", "lifecycle", group, "first run: walk, move garbage to the trash, "
                "delete the rest", "s", False, LIFECYCLE),
        Measure("gc.requests", "lifecycle", group, "requests of the first run", "requests",
                False, LIFECYCLE),
        Measure("gc.second", "lifecycle", group, "second run, a grace period later: empty "
                "the trash", "s", False, LIFECYCLE),
    ]
    group = f"copy · image {n}³ in two versions, local disk → S3 emulator (moto)"
    out += [
        Measure("copy.diced.throughput", "lifecycle", group, "diced clone", "MB/s", True,
                LIFECYCLE),
        Measure("copy.fsspec.throughput", "lifecycle", group,
                "aws s3 sync-style copy of the store's files (fsspec)", "MB/s", True,
                LIFECYCLE),
        Measure("copy.diced.bytes", "lifecycle", group, "bytes diced moved", "MB", False,
                LIFECYCLE),
        Measure("copy.fsspec.bytes", "lifecycle", group, "bytes the s3 sync-style copy moved",
                "MB", False, LIFECYCLE),
        Measure("copy.diced.incremental", "lifecycle", group,
                "push of one more version (a one-chunk edit): bytes diced moved", "KB", False,
                LIFECYCLE),
        Measure("copy.fsspec.incremental", "lifecycle", group,
                "the same by the s3 sync-style copy", "KB", False, LIFECYCLE),
    ]
    for stored in plan.diff_sizes:
        group = (f"diff · sparse unbounded array, {stored:,} stored chunks, "
                 f"{plan.diff_changed:,} changed")
        out.append(Measure(f"diff.{stored}.time", "diff", group,
                           "diff of the two versions", "ms", False, DIFFING))
    group = (f"merge · two branches of image {n}³, {plan.merge_changed} changed chunks each, "
             f"{plan.merge_changed // 2} on both (disjoint voxels)")
    out += [
        Measure("merge.time", "merge", group, "merge into a new version", "ms", False,
                MERGING),
        Measure("merge.bytes", "merge", group, "bytes added to the store", "KB", False,
                MERGING),
    ]
    return out
