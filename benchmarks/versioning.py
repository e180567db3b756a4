"""The version-control workloads: diff of two versions of a sparse array, and a merge.

**diff.** A sparse unbounded 3-D array (4³ uint8 chunks far from the origin) with ``n``
stored chunks is committed, then ``plan.diff_changed`` random chunks of it are rewritten
and committed again; the timed operation is the diff of those two versions, opened
afresh: diced's ``repo.diff(a, b)`` (it walks both chunk trees, skipping equal subtrees)
and Icechunk's ``repo.diff(from_snapshot_id=a, to_snapshot_id=b)``. Both stores are
built once per size by :func:`diff_build` (untimed), with the same chunk contents: diced
through array writes, Icechunk through its zarr store (the same encoded bytes). diced's
is built in a ``memory://`` store, then its live objects are copied to the disk (the
pointers its locks folded into trees are garbage and are left behind), because a million
small files take minutes to write; what the diff reads is exactly what diced writes on a
disk.

**merge.** Two branches of the prepared image each change ``plan.merge_changed`` chunks;
half of those chunks are changed on both branches, in disjoint voxels (one branch the
lower half of the chunk's planes, the other the upper half). Timed: ``repo.merge`` of
the two; reported with the bytes it added to the store. Icechunk has no merge.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.plan import Task
from benchmarks.systems import REPO

__all__ = ["diff_block", "diff_build", "diff_time", "merge_time"]

Samples = dict[str, list[float]]
Outcome = tuple[Samples, dict[str, Any]]

#: Chunk shape and first chunk coordinates of the sparse array.
_CHUNK = (4, 4, 4)
_ORIGIN = 10_000
_ARRAY = "sparse"


def diff_block(n: int) -> tuple[int, int, int]:
    """A box of exactly ``n`` chunks, as near a cube as ``n``'s divisors allow."""
    a = round(n ** (1 / 3))
    while n % a:
        a -= 1
    rest = n // a
    b = round(rest ** 0.5)
    while rest % b:
        b -= 1
    return a, b, rest // b


def _chunk_keys(n: int) -> list[tuple[str, int]]:
    """zarr key and content value (1-250) of each stored chunk."""
    a, b, c = diff_block(n)
    return [(f"{_ARRAY}/c/{_ORIGIN + i}/{_ORIGIN + j}/{_ORIGIN + k}",
             (i * b * c + j * c + k) % 250 + 1)
            for i in range(a) for j in range(b) for k in range(c)]


def _changed(task: Task) -> list[str]:
    """The keys of the chunks the second version rewrites (the same for every system)."""
    keys = [k for k, _ in _chunk_keys(task.stored)]
    picks = np.random.default_rng([task.plan.seed, task.stored]).choice(
        len(keys), task.plan.diff_changed, replace=False)
    return [keys[int(i)] for i in sorted(picks)]


def _encoded() -> dict[int, Any]:
    """The stored bytes (zarr buffers) of a chunk holding one value, for values 1-255."""
    import zarr

    from diced.repo import default_compressor

    scratch = zarr.storage.MemoryStore()
    array = zarr.create_array(scratch, name="a", shape=_CHUNK, chunks=_CHUNK, dtype="uint8",
                              fill_value=0, compressors=default_compressor())
    out = {}
    for value in range(1, 256):
        array[...] = value
        out[value] = scratch._store_dict["a/c/0/0/0"]
    return out


def _set_all(store: Any, items: list[tuple[str, Any]]) -> None:
    """``store.set`` every item, a batch of concurrent sets at a time."""
    from zarr.core.sync import sync

    async def put() -> None:
        for start in range(0, len(items), 5000):
            await asyncio.gather(*(store.set(k, v) for k, v in items[start:start + 5000]))

    sync(put())


def diff_build(task: Task) -> Outcome:
    """Build the two versions ``diff_time`` compares; record their ids.

    A build left in ``--workdir`` by an earlier run of the same recipe is reused (the
    stores are deterministic, and the largest takes minutes to build).
    """
    root = task.layout.diff(task.system, task.stored)
    recipe = {"stored": task.stored, "changed": task.plan.diff_changed,
              "seed": task.plan.seed, "chunk": list(_CHUNK)}
    built = root / "versions.json"
    if built.exists() and json.loads(built.read_text()).get("recipe") == recipe:
        return {}, {}
    task.layout.discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    if task.system == "icechunk":
        encoded = _encoded()
        first = [(key, encoded[value]) for key, value in _chunk_keys(task.stored)]
        second = [(key, encoded[255]) for key in _changed(task)]
        versions = _build_icechunk(root, first, second)
    else:
        versions = _build_diced(root, task)
    built.write_text(json.dumps({"recipe": recipe, "versions": versions}))
    return {}, {}


def _build_diced(root: Path, task: Task) -> list[str]:
    from diced import DicedStore
    from diced.backends import LocalObjectStore

    a, b, c = diff_block(task.stored)
    values = (np.arange(a * b * c) % 250 + 1).astype(np.uint8).reshape(a, b, c)
    for axis in range(3):
        values = np.repeat(values, _CHUNK[axis], axis=axis)
    start = [_ORIGIN * n for n in _CHUNK]
    memory = f"memory://bench-diff-{uuid.uuid4().hex}"
    with DicedStore(memory) as store:
        repo = store.create_repo(REPO)
        array = repo.create_array(_ARRAY, np.uint8, dims=3, chunks=_CHUNK)
        array[tuple(slice(s, s + n) for s, n in zip(start, values.shape, strict=True))] = values
        repo.lock_node("stored chunks")
        ids = [repo.uuid]
        repo.change_version(repo.create_branch("changed chunks"))
        array = repo.get_array(_ARRAY)
        for key in _changed(task):
            coords = [int(part) for part in key.split("/")[2:]]
            array[tuple(slice(i * n, (i + 1) * n) for i, n in zip(coords, _CHUNK,
                                                                   strict=True))] = 255
        repo.lock_node("changed chunks")
        ids.append(repo.uuid)
        disk = LocalObjectStore(str(root))
        for key in store.backend.list_prefix(""):
            if "/open/" not in key:  # both nodes are locked: their pointers are garbage
                data = store.backend.get(key)
                assert data is not None
                disk.put(key, data)
        disk.close()
    return ids


def _build_icechunk(root: Path, first: list[tuple[str, Any]], second: list[tuple[str, Any]]
                    ) -> list[str]:
    import zarr

    from benchmarks.systems import _icechunk_repository
    from diced.repo import default_compressor

    repo = _icechunk_repository(root, create=True)
    session = repo.writable_session("main")
    zarr.create_array(session.store, name=_ARRAY, shape=(2**31 - 1,) * 3, chunks=_CHUNK,
                      dtype="uint8", fill_value=0, compressors=default_compressor())
    ids = []
    for items, message in ((first, "stored chunks"), (second, "changed chunks")):
        if ids:
            session = repo.writable_session("main")
        _set_all(session.store, items)
        ids.append(session.commit(message))
    return ids


def diff_time(task: Task) -> Outcome:
    """Open the built store afresh and time the diff of its two versions."""
    root = task.layout.diff(task.system, task.stored)
    a, b = json.loads((root / "versions.json").read_text())["versions"]
    changed = task.plan.diff_changed
    if task.system == "icechunk":
        from benchmarks.systems import _icechunk_repository

        repo = _icechunk_repository(root, create=False)
        start = time.perf_counter()
        diff = repo.diff(from_snapshot_id=a, to_snapshot_id=b)
        seconds = time.perf_counter() - start
        found = sum(len(chunks) for chunks in diff.updated_chunks.values())
    else:
        from diced import DicedStore

        with DicedStore(str(root)) as store:
            repo = store.open_repo(REPO)
            start = time.perf_counter()
            result = repo.diff(a, b)
            seconds = time.perf_counter() - start
            found = len(result.arrays[_ARRAY].modified)
    if found != changed:
        raise AssertionError(f"the diff found {found} changed chunks, not {changed}")
    return {f"diff.{task.stored}.time": [seconds * 1e3]}, {}


def _merge_edits(task: Task) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Chunk indices the left and the right branch change; half of them are shared."""
    grid = task.plan.size // task.plan.chunk
    count = task.plan.merge_changed
    rng = np.random.default_rng([task.plan.seed, task.rep, 77])
    order = [tuple(int(x) for x in np.unravel_index(i, (grid,) * 3))
             for i in rng.permutation(grid ** 3)[:count + count // 2]]
    left = order[:count]
    right = order[count // 2:count + count // 2]
    return left, right  # type: ignore[return-value]


def merge_time(task: Task) -> Outcome:
    """Two branches of the prepared image, then a timed merge; bytes it added."""
    from benchmarks.workloads import _fresh_copy, disk_bytes
    from diced import DicedStore

    layout, plan = task.layout, task.plan
    root = _fresh_copy(layout, layout.prepared("diced-locked", "image"),
                       layout.scratch(task.system, task.workload, task.rep))
    left, right = _merge_edits(task)
    c, half = plan.chunk, plan.chunk // 2
    with DicedStore(str(root)) as store:
        repo = store.open_repo(REPO)
        if not repo.locked:
            repo.lock_node("prepared")
        base = repo.uuid
        ids = []
        for name, chunks, planes in (("left", left, slice(0, half)),
                                     ("right", right, slice(half, c))):
            repo.change_version(base)
            repo.change_version(repo.create_branch(name, name))
            array = repo.get_array("image")
            for z, y, x in chunks:
                box = (slice(z * c + planes.start, z * c + planes.stop),
                       slice(y * c, y * c + c), slice(x * c, x * c + c))
                array[box] = _edit(array[box])
            repo.lock_node(f"{name} edits")
            ids.append(repo.uuid)
        before = disk_bytes(root)
        start = time.perf_counter()
        merged = repo.merge(ids, "merge", name="merged", progress=False)
        seconds = time.perf_counter() - start
        added = disk_bytes(root) - before
        repo.change_version(merged)
        _check_merge(repo, ids, left, right, c)
    task.layout.discard(root)
    return {"merge.time": [seconds * 1e3], "merge.bytes": [added / 1e3]}, {}


def _edit(block: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return (block + np.uint8(1)).astype(block.dtype)


def _check_merge(repo: Any, ids: list[str], left: list[Any], right: list[Any], c: int) -> None:
    """Every changed chunk of the merge holds both branches' edits."""
    merged = repo.get_array("image")
    for chunk in sorted(set(left) | set(right))[:8]:
        box = tuple(slice(i * c, i * c + c) for i in chunk)
        got = merged[box]
        for version, chunks in zip(ids, (left, right), strict=True):
            if chunk in chunks:
                repo.change_version(version)
                half = slice(0, c // 2) if version == ids[0] else slice(c // 2, c)
                if not np.array_equal(got[half], repo.get_array("image")[box][half]):
                    raise AssertionError(f"the merge lost an edit of chunk {chunk}")
