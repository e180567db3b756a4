"""What is timed. Each function runs one :class:`~benchmarks.plan.Task` inside a worker.

A workload returns its samples as ``{measure key: [values]}`` (keys from
:mod:`benchmarks.measures`); the runner takes the median over all samples of a key from
every repetition. Latency workloads report one median and one p90 per repetition; the
history build reports one value per probe.

Only the operation itself is timed: opening stores, generating data, copying the
prepared store and checking the results happen outside the timed region. Every read
workload first reads one chunk untimed, so lazily built thread pools and metadata caches
are warm for every system alike, and bulk workloads touch the memory they will need first
(see :func:`_warm_memory`). Everything reads from the OS page cache (the stores
were just written): the figures are software costs, not disk speed.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.data import (
    ARRAYS,
    Box,
    aligned_boxes,
    box_of_chunk,
    distinct_chunks,
    ensure_tiff_stack,
    load_volume,
    random_blocks,
    tiled_volume,
    unaligned_boxes,
)
from benchmarks.lifecycle import lifecycle
from benchmarks.plan import Layout, Task
from benchmarks.systems import system
from benchmarks.versioning import diff_build, diff_time, merge_time

__all__ = ["RUNNERS", "Samples", "disk_bytes"]

#: Samples per measure key.
Samples = dict[str, list[float]]
#: What a workload returns: its samples, and facts for the report (such as codecs).
Outcome = tuple[Samples, dict[str, Any]]

_PROBES = 5


class WrongResult(AssertionError):
    """A system returned data different from what was written: the run is invalid."""


def disk_bytes(root: Path) -> int:
    """Total size of the files below ``root`` (what the store added to the disk)."""
    return sum((Path(d) / f).lstat().st_size for d, _, files in os.walk(root) for f in files)


def _whole(shape: tuple[int, ...]) -> Box:
    return tuple(slice(0, n) for n in shape)


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _latencies_ms(read: Callable[[Box], object], boxes: list[Box]) -> list[float]:
    """Milliseconds each ``read(box)`` took, one call at a time."""
    return [_seconds(partial(read, box)) * 1e3 for box in boxes]


def _check(actual: npt.NDArray[Any], expected: npt.NDArray[Any], what: str) -> None:
    if actual.shape != expected.shape or not np.array_equal(actual, expected):
        raise WrongResult(f"{what}: the system returned different data")


def _fresh_copy(layout: Layout, source: Path, target: Path) -> Path:
    """A private copy of a prepared store, so a task's writes never leak into another's."""
    layout.discard(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True)
    # Write the copy back now: pending writeback would otherwise slow the timed renames
    # and writes that follow (ext4 flushes a file's data when it is renamed over another).
    os.sync()
    return target


def _stat(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q))


# -- memory ---------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM); False where that is not possible.

    Without a reset (not Linux, or no permission) the peak is the whole process's, which
    overstates the read's peak by whatever the process touched before it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _warm_memory(nbytes: int) -> None:
    """Touch and free ``nbytes`` of fresh memory before a timed bulk operation.

    On a virtual machine the first touch of guest memory the host has not backed yet costs
    up to ~3 s per GB, and how much of it a fresh process hits varies from run to run.
    Touching the memory a bulk operation will need beforehand (freed memory is reused
    cheaply) takes that hypervisor cost out of the figures, for every system alike.
    """
    np.ones(nbytes, dtype=np.uint8)


def _peak_rss_bytes(reset: bool) -> int:
    if reset:
        return _status_kb("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- workloads ------------------------------------------------------------------------------


def bulk_write(task: Task) -> Outcome:
    """Write a whole volume into a new store (plus lock or commit, for versioned systems)."""
    adapter, layout = system(task.system), task.layout
    data = load_volume(layout, task.array)
    root = (layout.prepared(task.system, task.array) if task.keep
            else layout.scratch(task.system, task.workload, task.rep))
    task.layout.discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    handle = adapter.create(root, task.array, data.dtype, data.shape,
                            (task.plan.chunk,) * data.ndim)
    _warm_memory(2 * data.nbytes)

    def write() -> None:
        handle.write(_whole(data.shape), data)
        adapter.commit("bulk write")

    seconds = _seconds(write)
    stored = disk_bytes(root)
    codecs = handle.codecs()
    if not task.keep:
        task.layout.discard(root)
    return ({f"write.{task.array}.throughput": [data.nbytes / seconds / 1e9],
             f"write.{task.array}.stored": [stored / 1e6]},
            {"codecs": codecs})


def bulk_read(task: Task) -> Outcome:
    """Read a whole volume from a fresh handle; time it and record the peak memory."""
    adapter, layout = system(task.system), task.layout
    handle = adapter.open(layout.prepared(task.system, task.array), task.array)
    handle.read(box_of_chunk(task.plan, (0, 0, 0)))
    shape = (task.plan.size,) * 3
    _warm_memory(2 * task.plan.size**3 * ARRAYS[task.array].itemsize)
    before = _status_kb("VmRSS") * 1024
    exact = _reset_peak_rss()
    start = time.perf_counter()
    result = handle.read(_whole(shape))
    seconds = time.perf_counter() - start
    peak = _peak_rss_bytes(exact)
    nbytes = result.nbytes
    _check(result, load_volume(layout, task.array), f"{adapter.label} bulk read")
    return ({f"read.{task.array}.throughput": [nbytes / seconds / 1e9],
             f"read.{task.array}.peak_rss": [peak / 1e6],
             f"read.{task.array}.peak_increase": [(peak - before) / 1e6]}, {})


def random_reads(task: Task) -> Outcome:
    """Random chunk-aligned reads, then random unaligned reads, each timed on its own."""
    adapter, layout, plan = system(task.system), task.layout, task.plan
    handle = adapter.open(layout.prepared(task.system, "image"), "image")
    handle.read(box_of_chunk(plan, (0, 0, 0)))
    samples: Samples = {}
    expected = load_volume(layout, "image")
    for kind, boxes in (
        ("aligned", aligned_boxes(plan, plan.aligned_reads, "aligned-reads", task.rep)),
        ("unaligned", unaligned_boxes(plan, plan.unaligned_edge, plan.unaligned_reads,
                                      "unaligned-reads", task.rep)),
    ):
        times = _latencies_ms(handle.read, boxes)
        samples[f"reads.{kind}.median"] = [_stat(times, 50)]
        samples[f"reads.{kind}.p90"] = [_stat(times, 90)]
        for box in boxes[:3]:
            _check(handle.read(box), expected[box], f"{adapter.label} {kind} read")
    return samples, {}


def rmw(task: Task) -> Outcome:
    """Small unaligned writes, each a read-modify-write of up to 8 chunks, then a commit."""
    adapter, layout, plan = system(task.system), task.layout, task.plan
    root = _fresh_copy(layout, layout.prepared(task.system, "image"),
                       layout.scratch(task.system, task.workload, task.rep))
    handle = adapter.open_for_edit(root, "image")
    boxes = unaligned_boxes(plan, plan.rmw_edge, plan.rmw_writes, "rmw", task.rep)
    blocks = random_blocks(plan, plan.rmw_edge, plan.rmw_writes, np.dtype(np.uint8), "rmw",
                           task.rep)
    times = [_seconds(partial(handle.write, box, block)) * 1e3
             for box, block in zip(boxes, blocks, strict=True)]
    _check(handle.read(boxes[-1]), blocks[-1], f"{adapter.label} read after write")
    samples: Samples = {"rmw.median": [_stat(times, 50)], "rmw.p90": [_stat(times, 90)]}
    if adapter.commit_means:
        samples["rmw.commit"] = [_seconds(partial(adapter.commit, "edits")) * 1e3]
    task.layout.discard(root)
    return samples, {}


def _edited_chunk(volume: npt.NDArray[Any], box: Box, step: int) -> npt.NDArray[Any]:
    """The chunk at ``box`` changed as an edit would (image-like, so it compresses alike)."""
    return (volume[box] + np.uint8(step % 255 + 1)).astype(volume.dtype)


def branch_bytes(task: Task) -> Outcome:
    """Bytes a branch plus a one-chunk edit adds (diced·open: before the node is locked)."""
    adapter, layout, plan = system(task.system), task.layout, task.plan
    root = _fresh_copy(layout, layout.prepared(task.system, "image"),
                       layout.scratch(task.system, task.workload, task.rep))
    versions = adapter.versions(root)
    versions.head()  # diced·open's prepared root is locked here, before counting
    before = disk_bytes(root)
    versions.branch("edit")
    box = box_of_chunk(plan, (1,) * 3 if plan.size // plan.chunk > 1 else (0,) * 3)
    versions.write("image", box, _edited_chunk(load_volume(layout, "image"), box, 0))
    if adapter.commit_means:
        versions.commit("one-chunk edit")
    added = disk_bytes(root) - before
    task.layout.discard(root)
    return {"branch.bytes": [added / 1e3]}, {}


def history_build(task: Task) -> Outcome:
    """Grow a chain of one-chunk-edit versions; time commit and branch at each depth.

    Depth ``d`` is the number of committed versions in a version's history: the prepared
    store's import is depth 1, each further edit adds one. Once the chain is built,
    ``_PROBES`` (or ``reps``, if more) rounds each visit every depth of the plan in turn,
    branch from its version, edit one chunk and commit, timing the branch and the commit;
    interleaving the depths spreads the file system's varying latency over all of them.
    Finally one more branch per depth is left open for the open-node reads. The version
    ids go to ``versions.json`` for :func:`history_reads`.
    """
    adapter, layout, plan = system(task.system), task.layout, task.plan
    root = _fresh_copy(layout, layout.prepared(task.system, "image"),
                       layout.history(task.system))
    versions = adapter.versions(root)
    volume = load_volume(layout, "image")
    deepest = max(plan.depths)
    probes = max(plan.reps, _PROBES)
    boxes = aligned_boxes(plan, deepest + probes * len(plan.depths), "history", 0)
    chain = {1: versions.head()}
    for depth in range(1, deepest):  # the current version is always the chain's tip
        versions.branch(None)
        versions.write("image", boxes[depth], _edited_chunk(volume, boxes[depth], depth))
        chain[depth + 1] = versions.commit(f"edit {depth + 1}")
    samples: Samples = {}
    spare = iter(boxes[deepest:])
    for probe in range(probes):
        for depth in plan.depths:
            versions.checkout(chain[depth])
            samples.setdefault(f"history.{depth}.branch", []).append(
                _seconds(partial(versions.branch, f"d{depth}-{probe}")) * 1e3)
            box = next(spare)
            versions.write("image", box, _edited_chunk(volume, box, depth + probe))
            samples.setdefault(f"history.{depth}.commit", []).append(
                _seconds(partial(versions.commit, "probe edit")) * 1e3)
    found: dict[int, dict[str, str]] = {}
    for depth in plan.depths:
        versions.checkout(chain[depth])
        versions.branch(f"d{depth}-open")
        found[depth] = {"locked": chain[depth], "open": versions.writable_version()}
    (root / "versions.json").write_text(json.dumps(found))
    return samples, {}


def history_reads(task: Task) -> Outcome:
    """Open the version at ``task.depth`` and read random chunks of it.

    diced·open reads the open child of the depth-``d`` version; the others read the
    version itself. One untimed open and read first takes the process's one-time start-up
    costs (thread pools, runtimes); the timed open then makes a new store object, so no
    cache of the first one helps.
    """
    builder = "icechunk" if task.system == "icechunk" else "diced-locked"
    layout, plan, depth = task.layout, task.plan, task.depth
    root = layout.history(builder)
    found = json.loads((root / "versions.json").read_text())
    version = found[str(depth)]["open" if task.system == "diced-open" else "locked"]
    versions = system(builder).versions(root)
    versions.open_version(version, "image").read(box_of_chunk(plan, (0, 0, 0)))
    start = time.perf_counter()
    handle = versions.open_version(version, "image")
    opened = (time.perf_counter() - start) * 1e3
    times = _latencies_ms(handle.read, aligned_boxes(plan, plan.depth_reads, "depth", task.rep))
    return {f"history.{depth}.open": [opened], f"history.{depth}.read": [_stat(times, 50)]}, {}


def import_stack(task: Task) -> Outcome:
    """Import the image as a TIFF stack (one file per z-slice) into a new store.

    The stack is written once (untimed) and read from the page cache, like every input
    here. Timed: reading the slices and writing the store. The peak RSS increase is the
    memory the import holds beyond what the process had (the kernel's VmHWM, reset first).
    """
    adapter, layout, plan = system(task.system), task.layout, task.plan
    slices = ensure_tiff_stack(layout, "image")
    root = layout.scratch(task.system, task.workload, task.rep)
    task.layout.discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _warm_memory(4 * plan.chunk * plan.size**2)
    before = _status_kb("VmRSS") * 1024
    exact = _reset_peak_rss()
    start = time.perf_counter()
    handle = adapter.import_tiff_stack(root, "image", slices, (plan.chunk,) * 3)
    seconds = time.perf_counter() - start
    peak = _peak_rss_bytes(exact)
    expected = load_volume(layout, "image")
    _check(handle.read(_whole(expected.shape)), expected, f"{adapter.label} import")
    codecs = handle.codecs()
    task.layout.discard(root)
    return ({"import.throughput": [expected.nbytes / seconds / 1e9],
             "import.peak_increase": [(peak - before) / 1e6]}, {"codecs": codecs})


def pyramid_update(task: Task) -> Outcome:
    """A pyramid's update after a few whole-chunk edits, against building it from scratch.

    Untimed: the image, tiled to a cube of edge ``pyramid_size``, is written to a new
    diced array. Timed: ``build_pyramid()`` of the whole volume (the rebuild every edit
    would need without incremental updates); then, in a branch of the locked version,
    ``update_pyramid()`` after ``pyramid_edits`` random whole chunks were rewritten
    (untimed). Chunk counts are level chunks written (not level 0's).
    """
    from diced import DicedStore
    from diced.pyramid import downsample

    layout, plan = task.layout, task.plan
    volume = tiled_volume(layout, "image", plan.pyramid_size)
    root = layout.scratch(task.system, task.workload, task.rep)
    task.layout.discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with DicedStore(str(root)) as store:
        repo = store.create_repo("bench", "pyramid")
        arr = repo.create_array("image", volume.dtype, shape=volume.shape,
                                chunks=(plan.chunk,) * 3)
        arr[...] = volume
        _warm_memory(volume.nbytes // 2)
        start = time.perf_counter()
        levels = arr.build_pyramid(progress=False)
        rebuild = time.perf_counter() - start
        built = sum(len(level.chunk_digests()) for level in levels[1:])
        repo.lock_node("volume and pyramid")
        repo.change_version(repo.create_branch("edit"))
        arr = repo.get_array("image")
        boxes = distinct_chunks(plan, plan.pyramid_size, plan.pyramid_edits, "pyramid",
                                task.rep)
        for step, box in enumerate(boxes):
            arr[box] = _edited_chunk(volume, box, step)
        start = time.perf_counter()
        report = arr.update_pyramid(progress=False)
        update = time.perf_counter() - start
        first = tuple(slice(s.start // 2, s.stop // 2) for s in boxes[0])
        _check(arr.level(1)[first], downsample(arr[boxes[0]], (2, 2, 2), "mean"),
               "diced pyramid update")
    task.layout.discard(root)
    return ({"pyramid.update": [update * 1e3],
             "pyramid.update_chunks": [float(report.total_rewritten)],
             "pyramid.rebuild": [rebuild * 1e3],
             "pyramid.rebuild_chunks": [float(built)]}, {})


#: Worker workload name → function.
RUNNERS: dict[str, Callable[[Task], Outcome]] = {
    "bulk-write": bulk_write,
    "bulk-read": bulk_read,
    "random-reads": random_reads,
    "rmw": rmw,
    "branch-bytes": branch_bytes,
    "history": history_build,
    "history-reads": history_reads,
    "import": import_stack,
    "pyramid": pyramid_update,
    "lifecycle": lifecycle,
    "diff-build": diff_build,
    "diff": diff_time,
    "merge": merge_time,
}
