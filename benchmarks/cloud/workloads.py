"""The cloud workloads, run inside a worker process: what is timed, and what is counted.

Each returns samples (figure key → values) and facts for the report (the codec chain a
bulk write stored). Only the operation is timed; opening a store, loading the data and
checking results are not. Every read workload first reads one chunk untimed, so lazily
built clients, connection pools and metadata caches are warm for every system alike. The
request count is read at the proxy: the requests it forwarded while the read ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.cloud.emulators import request_count
from benchmarks.cloud.plan import CloudPlan, CloudTask
from benchmarks.cloud.systems import Place, cloud_system
from benchmarks.data import ARRAYS, aligned_boxes, box_of_chunk, load_volume
from benchmarks.plan import Layout
from benchmarks.workloads import (
    Outcome,
    _check,
    _latencies_ms,
    _seconds,
    _stat,
    _warm_memory,
    _whole,
)

__all__ = ["CLOUD_RUNNERS", "count_volume", "prepared_place"]


def prepared_place(task: CloudTask, array: str) -> Place:
    """The store of ``array`` a read task of ``task.system`` reads, through its endpoint."""
    writer = cloud_system(task.system).prepared_by(task.cloud)
    return Place(task.cloud, task.endpoint, f"{writer}/{array}/prepared")


def count_volume(plan: CloudPlan) -> npt.NDArray[np.uint8]:
    """A ``count_grid``³-chunk volume whose chunks all differ and compress to about 1 KB.

    Each chunk holds 1 KiB of random bytes in a corner (so no library can inline it in
    its metadata: Icechunk inlines chunks under 512 bytes) and two voxels numbering it;
    the rest is the fill value. Every system stores, and reads, every chunk.
    """
    n, c = plan.count_grid, plan.chunk
    volume = np.zeros((n * c,) * 3, dtype=np.uint8)
    corner = np.zeros((c, c), dtype=bool)
    corner[:16, :64] = True
    plane = np.tile(corner, (n, n))  # the corner of every chunk of a z-plane
    volume[::c][:, plane] = np.random.default_rng([plan.seed, n]).integers(
        1, 256, size=(n, int(plane.sum())), dtype=np.uint8)
    index = np.arange(n**3).reshape(n, n, n)
    volume[2::c, ::c, ::c] = index % 255 + 1
    volume[3::c, ::c, ::c] = index // 255 + 1
    return volume


def bulk_write(task: CloudTask) -> Outcome:
    """Write a whole volume into a new store (plus lock or commit, for versioned systems)."""
    adapter = cloud_system(task.system)
    data = load_volume(Layout(task.workdir), task.array)
    tag = "prepared" if task.keep else f"w{task.latency}-{task.rep}"
    place = Place(task.cloud, task.endpoint, f"{task.system}/{task.array}/{tag}")
    handle = adapter.create(place, task.array, data.dtype, data.shape,
                            (task.plan.chunk,) * data.ndim)
    _warm_memory(2 * data.nbytes)

    def write() -> None:
        handle.write(_whole(data.shape), data)
        adapter.commit("bulk write")

    seconds = _seconds(write)
    return ({f"write.{task.array}.throughput": [data.nbytes / seconds / 1e9]},
            {"codecs": handle.codecs()})


def bulk_read(task: CloudTask) -> Outcome:
    """Read a whole volume from a fresh handle."""
    adapter = cloud_system(task.system)
    handle = adapter.open(prepared_place(task, task.array), task.array)
    handle.read(box_of_chunk(task.plan, (0, 0, 0)))
    shape = (task.plan.size,) * 3
    _warm_memory(2 * task.plan.size**3 * ARRAYS[task.array].itemsize)
    result: list[npt.NDArray[Any]] = []
    seconds = _seconds(lambda: result.append(handle.read(_whole(shape))))
    _check(result[0], load_volume(Layout(task.workdir), task.array), f"{adapter.label} read")
    return {f"read.{task.array}.throughput": [result[0].nbytes / seconds / 1e9]}, {}


def random_reads(task: CloudTask) -> Outcome:
    """Random whole chunks of the image, each read (and timed) alone."""
    adapter, plan = cloud_system(task.system), task.plan
    handle = adapter.open(prepared_place(task, "image"), "image")
    handle.read(box_of_chunk(plan, (0, 0, 0)))
    boxes = aligned_boxes(plan, plan.random_reads, "cloud-reads", task.rep)
    times = _latencies_ms(handle.read, boxes)
    expected = load_volume(Layout(task.workdir), "image")
    for box in boxes[:3]:
        _check(handle.read(box), expected[box], f"{adapter.label} chunk read")
    return {"reads.median": [_stat(times, 50)], "reads.p90": [_stat(times, 90)]}, {}


def count_requests(task: CloudTask) -> Outcome:
    """Requests of one read of ``count_grid``³ chunks of a locked (committed) version.

    The volume is written first (untimed; by the system that prepares this one's stores),
    then a fresh handle reads it all while the proxy counts; opening the handle is not
    counted, everything the read itself needs (index pages, manifests) is.
    """
    reader = cloud_system(task.system)
    writer = cloud_system(reader.prepared_by(task.cloud))
    volume = count_volume(task.plan)
    place = Place(task.cloud, task.endpoint, f"{task.system}/count-{task.rep}")
    handle = writer.create(place, "count", volume.dtype, volume.shape, (task.plan.chunk,) * 3)
    handle.write(_whole(volume.shape), volume)
    writer.commit("count volume")
    fresh = reader.open(place, "count")
    before = request_count(task.endpoint)
    result = fresh.read(_whole(volume.shape))
    requests = request_count(task.endpoint) - before
    _check(result, volume, f"{reader.label} count read")
    return {"count.requests": [float(requests)]}, {}


#: Worker workload name → function.
CLOUD_RUNNERS: dict[str, Callable[[CloudTask], Outcome]] = {
    "bulk-write": bulk_write,
    "bulk-read": bulk_read,
    "random-reads": random_reads,
    "request-count": count_requests,
}
