"""The storage-lifecycle workloads: garbage collection of a large store, and copies to S3.

Both are diced's own (no other system collects garbage or copies versions by content),
so they report for ``diced-locked`` only, next to a baseline where one exists:

* ``gc``: a store of ``plan.gc_chunks`` tiny chunks written in two versions (about 2.75
  objects per chunk, more than half of them garbage: the pointers the locks left, and
  superseded blobs), every file aged past the grace period. Timed: the first run (moves
  garbage blobs to the trash, deletes the rest) with its backend requests counted, and the
  second, a grace period later (empties the trash).
* ``copy``: the image volume in two locked versions (an import, then an edit of one
  octant) copied from local disk to a moto S3 server in this process, against an
  ``aws s3 sync``-style copy of the same store directory with fsspec (upload every file
  the bucket lacks or holds with another size, many at once); then one more version (a
  one-chunk edit) pushed by both, counting the bytes each moved.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.plan import Task
from diced import DicedStore
from diced.backends import LocalObjectStore
from diced.lifecycle.gc import collect_garbage
from diced.testing.counting import CountingObjectStore

__all__ = ["copy_to_s3", "gc_large_store", "lifecycle"]

Outcome = tuple[dict[str, list[float]], dict[str, Any]]
_HOUR = 3600.0


def _fresh(task: Task, name: str) -> Path:
    """An empty scratch directory for one store of the task (its parent created)."""
    root = task.layout.scratch(task.system, task.workload, task.rep) / name
    task.layout.discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    return root


def _age(root: Path, seconds: float = 2 * 86400) -> int:
    """Make every object of a local store look ``seconds`` old; return how many there are."""
    then = time.time() - seconds
    count = 0
    for dirpath, _, names in os.walk(root):
        if ".diced-local" in dirpath:
            continue
        for name in names:
            os.utime(os.path.join(dirpath, name), (then, then))
            count += 1
    return count


def gc_large_store(task: Task) -> Outcome:
    """Collect a store of about ``2.75 × plan.gc_chunks`` objects, half of them garbage."""
    plan = task.plan
    root = _fresh(task, "gc")
    side = max(2, int(plan.gc_chunks ** 0.5))
    rng = np.random.default_rng(plan.seed)
    with DicedStore(str(root)) as store:
        repo = store.create_repo("gc")
        arr = repo.create_array("tiles", np.uint8, shape=(side * 8, side * 8), chunks=(8, 8))
        arr[...] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
        repo.lock_node("all tiles")
        repo.change_version(repo.create_branch("rewrite a quarter, twice"))
        quarter = (slice(0, side * 4), slice(0, side * 4))
        arr = repo.get_array("tiles")
        arr[quarter] = rng.integers(0, 256, (side * 4, side * 4), dtype=np.uint8)
        final = rng.integers(0, 256, (side * 4, side * 4), dtype=np.uint8)
        arr[quarter] = final
        repo.lock_node("rewritten")
        expected = arr[...]
        version = repo.uuid
    objects = _age(root)
    counting = CountingObjectStore(LocalObjectStore(str(root)))
    start = time.perf_counter()
    first = collect_garbage(counting, grace=_HOUR, progress=False)
    first_seconds = time.perf_counter() - start
    requests = counting.requests()
    _age(root)  # a grace period later
    start = time.perf_counter()
    second = collect_garbage(LocalObjectStore(str(root)), grace=_HOUR, progress=False)
    second_seconds = time.perf_counter() - start
    with DicedStore(str(root)) as store:
        if not np.array_equal(store.open_repo(uuid=version).get_array("tiles")[...], expected):
            raise AssertionError("garbage collection changed a locked version")
        if store.storage_report().unreferenced.objects:
            raise AssertionError("garbage left after two collections")
    task.layout.discard(root)
    return ({"gc.objects": [float(objects)],
             "gc.garbage": [float(first.trashed.objects + first.deleted.objects)],
             "gc.first": [first_seconds], "gc.requests": [float(requests)],
             "gc.second": [second_seconds]},
            {"trash": second.deleted.objects})


def _moto() -> tuple[Any, str]:
    """A moto S3 server on a free loopback port, and its URL."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def _sync_style(fs: Any, local: Path, remote: str) -> int:
    """Upload every file of ``local`` that ``remote`` lacks or holds with another size, as
    ``aws s3 sync`` does, in one concurrent batch; return the bytes uploaded."""
    fs.invalidate_cache()
    there = {path[len(remote) + 1:]: int(info["size"])
             for path, info in fs.find(remote, detail=True).items()} if fs.exists(remote) else {}
    sources, targets, size = [], [], 0
    for dirpath, _, names in os.walk(local):
        for name in names:
            path = Path(dirpath) / name
            key = path.relative_to(local).as_posix()
            if key.startswith(".diced-local/"):
                continue
            if there.get(key) != path.stat().st_size:
                sources.append(str(path))
                targets.append(f"{remote}/{key}")
                size += path.stat().st_size
    if sources:
        fs.put(sources, targets)
    return size


def copy_to_s3(task: Task) -> Outcome:
    """Clone a two-version repo to S3 with diced and with an s3-sync-style copy; push one
    more version with both."""
    import s3fs

    plan, layout = task.plan, task.layout
    root = _fresh(task, "copy")
    volume = np.load(layout.data("image"))
    with DicedStore(str(root)) as store:
        repo = store.create_repo("em")
        repo.create_array("image", np.uint8, shape=volume.shape,
                          chunks=(plan.chunk,) * 3)[...] = volume
        repo.lock_node("import")
        repo.change_version(repo.create_branch("edit an octant"))
        half = plan.size // 2
        octant = (slice(0, half),) * 3
        repo.get_array("image")[octant] = volume[octant] // 2
        repo.lock_node("octant edited")
    server, url = _moto()
    try:
        fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=url)
        fs.mkdir("bench")
        options = {"endpoint_url": url, "key": "testing", "secret": "testing"}
        with DicedStore(str(root)) as src, \
                DicedStore("s3://bench/diced", storage_options=options) as dst:
            start = time.perf_counter()
            first = src.sync_to(dst, progress=False)
            diced_seconds = time.perf_counter() - start
            start = time.perf_counter()
            synced = _sync_style(fs, root, "bench/fsspec")
            sync_seconds = time.perf_counter() - start
            repo = src.open_repo("em")
            repo.change_version(repo.create_branch("one more chunk"))
            chunk = (slice(0, plan.chunk),) * 3
            repo.get_array("image")[chunk] = 255 - volume[chunk]
            repo.lock_node("one chunk edited")
            second = src.sync_to(dst, progress=False)
            resynced = _sync_style(fs, root, "bench/fsspec")
            got = dst.open_repo(uuid=repo.uuid).get_array("image")[chunk]
            if not np.array_equal(got, 255 - volume[chunk]):
                raise AssertionError("the pushed version reads differently at the destination")
    finally:
        server.stop()
    task.layout.discard(root)
    return ({"copy.diced.throughput": [first.written.bytes / diced_seconds / 1e6],
             "copy.fsspec.throughput": [synced / sync_seconds / 1e6],
             "copy.diced.bytes": [first.written.bytes / 1e6],
             "copy.fsspec.bytes": [synced / 1e6],
             "copy.diced.incremental": [second.written.bytes / 1e3],
             "copy.fsspec.incremental": [resynced / 1e3]}, {})


def lifecycle(task: Task) -> Outcome:
    """Both lifecycle workloads, one after the other, in one worker process."""
    gc_samples, info = gc_large_store(task)
    copy_samples, _ = copy_to_s3(task)
    return {**gc_samples, **copy_samples}, info
