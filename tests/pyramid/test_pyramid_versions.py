"""Pyramids in a real store: every level equals the oracle, in every version, after edits.

Writes are counted at the disk (``counted`` fixture): an update rewrites exactly the level
chunks whose content changed, all of them over an edited voxel.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zarr
from _pyramid_oracle import pyramid_oracle

from diced import DicedArray, DicedRepo, DicedStore
from diced.testing import CountingObjectStore

Box = tuple[slice, ...]


def _check(arr: DicedArray, data: npt.NDArray[Any], factors: list[tuple[int, ...]],
           method: str) -> None:
    """Every level of ``arr`` equals the oracle's pyramid of ``data``."""
    spec = arr.pyramid
    assert spec is not None and [tuple(f) for f in spec.factors] == factors
    assert spec.method == method
    want = pyramid_oracle(data, factors, method)
    for k, expected in enumerate(want):
        level = arr.level(k)
        assert level.shape == expected.shape, k
        np.testing.assert_array_equal(level[...], expected, err_msg=f"level {k}")


def _repo(store: DicedStore) -> DicedRepo:
    return store.create_repo("em", "pyramid tests")


@pytest.mark.parametrize(("dtype", "labels", "factors"), [
    (np.uint8, False, [(2, 2, 2)] * 3),
    (np.uint8, False, [(1, 2, 2), (1, 2, 2), (2, 2, 2)]),
    (np.uint64, True, [(2, 2, 2)] * 2),
    (np.float32, False, [(3, 3, 2)] * 2),
    (np.int16, False, [(2, 3, 1)]),
], ids=["uint8-2", "uint8-anisotropic", "labels-mode", "float32-3", "int16-one-level"])
def test_every_level_equals_the_oracle(store: DicedStore, dtype: Any, labels: bool,
                                       factors: list[tuple[int, ...]]) -> None:
    repo = _repo(store)
    shape = (21, 30, 17)  # divisible by no factor on some axis
    rng = np.random.default_rng(3)
    if labels:
        data = rng.choice(np.array([0, 5, 2**40 + 9], np.uint64), size=shape)
    else:
        data = rng.integers(0, 200, shape).astype(dtype)
    arr = repo.create_array("vol", dtype, shape=shape, chunks=(8, 8, 8), islabel3D=labels)
    arr[...] = data
    uniform = all(f == factors[0] for f in factors)
    levels = arr.build_pyramid(levels=len(factors) if uniform else None,
                               factors=factors[0] if uniform else factors)
    assert [lv.name for lv in levels] == ["vol"] + [f"vol.s{k}" for k in
                                                    range(1, len(factors) + 1)]
    method = "mode" if labels else "mean"
    _check(arr, data, factors, method)
    repo.lock_node("with pyramid")
    _check(repo.get_array("vol"), data, factors, method)


def test_default_levels_stop_when_every_axis_fits_in_one_chunk(store: DicedStore) -> None:
    repo = _repo(store)
    arr = repo.create_array("vol", np.uint8, shape=(40, 300, 129), chunks=(16, 32, 32))
    arr[...] = 1
    shapes = [lv.shape for lv in arr.build_pyramid()]
    # 300 → 150 → 75 → 38 → 19: the last level is the first with every axis ≤ its chunk.
    assert shapes == [(40, 300, 129), (20, 150, 65), (10, 75, 33), (5, 38, 17), (3, 19, 9)]
    anisotropic = repo.create_array("aniso", np.uint8, shape=(40, 300, 129),
                                    chunks=(16, 32, 32))
    shapes = [lv.shape for lv in anisotropic.build_pyramid(factors=(1, 2, 2))]
    assert shapes[-1] == (40, 19, 9)  # z is never downsampled, so it never has to fit


def _edit(arr: DicedArray, data: npt.NDArray[Any], rng: np.random.Generator,
          count: int) -> list[Box]:
    boxes = []
    for _ in range(count):
        lo = [int(rng.integers(0, n)) for n in data.shape]
        box = tuple(slice(a, min(n, a + int(rng.integers(1, 9)))) for a, n in
                    zip(lo, data.shape, strict=True))
        values = rng.integers(0, 256, tuple(s.stop - s.start for s in box)).astype(data.dtype)
        arr[box] = values
        data[box] = values
        boxes.append(box)
    return boxes


def _affected(boxes: list[Box], scale: tuple[int, ...], unit: tuple[int, ...],
              shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    """Chunks of a level (voxel ``scale``, chunk ``unit``) holding a voxel over an edit."""
    found: set[tuple[int, ...]] = set()
    for box in boxes:
        ranges = []
        for s, f, u, n in zip(box, scale, unit, shape, strict=True):
            lo, hi = s.start // f, min(math.ceil(s.stop / f), n)
            ranges.append(range(lo // u, (hi - 1) // u + 1))
        found.update(itertools.product(*ranges))
    return found


def test_random_edits_rewrite_only_dirty_blocks_and_old_versions_keep_theirs(
        counted: tuple[DicedStore, CountingObjectStore]) -> None:
    store, counting = counted
    repo = _repo(store)
    factors = [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    rng = np.random.default_rng(11)
    data = rng.integers(0, 256, (30, 70, 50)).astype(np.uint8)
    arr = repo.create_array("vol", np.uint8, shape=data.shape, chunks=(8, 8, 8))
    arr[...] = data
    arr.build_pyramid(factors=factors)
    repo.lock_node("base")
    base_uuid, base_data = repo.uuid, data.copy()
    base_digests = [repo.get_array("vol").level(k).chunk_digests() for k in range(4)]

    for round_ in range(3):
        repo.change_version(repo.create_branch(f"round {round_}"))
        arr = repo.get_array("vol")
        before = [arr.level(k).chunk_digests() for k in range(4)]
        boxes = _edit(arr, data, rng, 6)
        counting.reset()
        report = arr.update_pyramid()
        written = counting.calls["put"]
        after = [arr.level(k).chunk_digests() for k in range(4)]
        changed = 0
        for k in range(1, 4):
            level = arr.level(k)
            diff = {c for c in set(before[k]) | set(after[k])
                    if before[k].get(c) != after[k].get(c)}
            assert diff <= _affected(boxes, arr.pyramid.scale(k), level.storage_chunks,
                                     level.shape), k
            assert report.rewritten[k - 1] == len(diff)
            changed += len(diff)
        assert written == changed  # no chunk rewritten with the bytes it already had
        _check(arr, data, factors, "mean")
        counting.reset()
        repo.lock_node(f"edits {round_}")
        assert counting.calls["put"] == 0  # the lock found the pyramid up to date
        _check(repo.get_array("vol"), data, factors, "mean")

    repo.change_version(base_uuid)
    old = repo.get_array("vol")
    assert [old.level(k).chunk_digests() for k in range(4)] == base_digests
    _check(old, base_data, factors, "mean")


def test_lock_node_alone_keeps_the_pyramid_exact(store: DicedStore) -> None:
    repo = _repo(store)
    rng = np.random.default_rng(5)
    labels = rng.choice(np.array([0, 1, 2, 3], np.uint64), size=(33, 40, 24))
    arr = repo.create_array("seg", np.uint64, shape=labels.shape, chunks=(8, 8, 8),
                            islabel3D=True, pyramid=True)
    assert arr.pyramid is not None and arr.pyramid.method == "mode"
    factors = [tuple(f) for f in arr.pyramid.factors]
    assert all(not arr.level(k).chunk_digests() for k in range(1, len(factors) + 1))
    arr[...] = labels
    repo.lock_node("written, never updated by hand")
    _check(repo.get_array("seg"), labels, factors, "mode")
    for step in range(3):
        repo.change_version(repo.create_branch(f"edit {step}"))
        arr = repo.get_array("seg")
        z = int(rng.integers(0, 33))
        arr[z, 3:30, 2:9] = step + 7
        labels[z, 3:30, 2:9] = step + 7
        repo.lock_node(f"edit {step}")
        _check(repo.get_array("seg"), labels, factors, "mode")


def test_branches_carry_their_own_pyramids(store: DicedStore) -> None:
    repo = _repo(store)
    data = np.zeros((16, 40, 40), np.uint8)
    repo.create_array("img", np.uint8, shape=data.shape, chunks=(8, 8, 8), pyramid=True)
    repo.lock_node("empty")
    root = repo.uuid
    results = {}
    for name, value in (("left", 50), ("right", 200)):
        repo.change_version(root)
        repo.change_version(repo.create_branch(name, name))
        arr = repo.get_array("img")
        mine = data.copy()
        mine[:, :20] = value
        arr[...] = mine
        repo.lock_node(name)
        results[repo.uuid] = mine
    for uuid, mine in results.items():
        repo.change_version(uuid)
        arr = repo.get_array("img")
        _check(arr, mine, [tuple(f) for f in arr.pyramid.factors], "mean")


def test_resizing_level_0_resizes_and_recomputes_the_levels(store: DicedStore) -> None:
    repo = _repo(store)
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, (19, 37, 41)).astype(np.uint8)
    arr = repo.create_array("vol", np.uint8, shape=data.shape, chunks=(8, 8, 8))
    arr[...] = data
    arr.build_pyramid(levels=2)
    repo.lock_node("base")
    for shape in ((17, 33, 30), (23, 33, 45), (5, 50, 9)):
        repo.change_version(repo.create_branch(f"to {shape}"))
        arr = repo.get_array("vol")
        arr.resize(shape)
        grown = np.zeros(shape, np.uint8)
        common = tuple(slice(0, min(a, b)) for a, b in zip(shape, data.shape, strict=True))
        grown[common] = data[common]
        data = grown
        halved = tuple(math.ceil(n / 2) for n in shape)
        assert arr.level(1).shape != halved  # levels follow at the next update or lock
        repo.lock_node(f"resized to {shape}")
        _check(repo.get_array("vol"), data, [(2, 2, 2)] * 2, "mean")


def test_rebuilding_with_other_factors_or_method_replaces_the_levels(
        store: DicedStore) -> None:
    repo = _repo(store)
    data = np.random.default_rng(4).integers(0, 9, (12, 20, 20)).astype(np.uint16)
    arr = repo.create_array("vol", np.uint16, shape=data.shape, chunks=(4, 8, 8))
    arr[...] = data
    arr.build_pyramid(levels=3)
    arr.build_pyramid(levels=2, factors=(1, 2, 2), method="max")
    assert sorted(n for n, _ in repo.list_instances()) == ["vol", "vol.s1", "vol.s2"]
    _check(arr, data, [(1, 2, 2)] * 2, "max")
    arr.build_pyramid(levels=3, factors=(1, 2, 2), method="max")  # keeps s1, s2, adds s3
    _check(arr, data, [(1, 2, 2)] * 3, "max")
    repo.lock_node("rebuilt")
    _check(repo.get_array("vol"), data, [(1, 2, 2)] * 3, "max")


def test_deleting_level_0_or_the_pyramid_deletes_the_levels(store: DicedStore) -> None:
    repo = _repo(store)
    for name in ("a", "b"):
        repo.create_array(name, np.uint8, shape=(8, 8, 8), chunks=(2, 2, 2), pyramid=True)
    assert sorted(n for n, _ in repo.list_instances()) == ["a", "a.s1", "a.s2", "b", "b.s1",
                                                           "b.s2"]
    repo.delete_array("a")
    repo.get_array("b").delete_pyramid()
    assert repo.get_array("b").pyramid is None
    assert [n for n, _ in repo.list_instances()] == ["b"]
    repo.lock_node("no pyramids")
    assert [n for n, _ in repo.list_instances()] == ["b"]


def test_unbounded_and_2d_arrays(store: DicedStore) -> None:
    repo = _repo(store)
    sparse = repo.create_array("sparse", np.uint16)  # unbounded: 2**31 - 1 per axis
    rng = np.random.default_rng(9)
    region = rng.integers(0, 999, (40, 24, 32)).astype(np.uint16)
    origin = (8000, 1600, 640)  # divisible by 2**3
    sparse[tuple(slice(o, o + n) for o, n in zip(origin, region.shape, strict=True))] = region
    sparse.build_pyramid(levels=3)
    want = pyramid_oracle(region, [(2, 2, 2)] * 3, "mean")
    for k in (1, 2, 3):
        level = sparse.level(k)
        assert level.unbounded and level.shape == (math.ceil((2**31 - 1) / 2**k),) * 3
        box = tuple(slice(o >> k, (o >> k) + n) for o, n in
                    zip(origin, want[k].shape, strict=True))
        np.testing.assert_array_equal(level[box], want[k])
        assert len(level.chunk_digests()) <= len(sparse.chunk_digests())

    plane = np.arange(50 * 70, dtype=np.float64).reshape(50, 70) / 8
    flat = repo.create_array("plane", np.float64, shape=plane.shape, chunks=(16, 16))
    flat[...] = plane
    shapes = [lv.shape for lv in flat.build_pyramid()]
    assert shapes == [(50, 70), (25, 35), (13, 18), (7, 9)]  # 18 > 16: one more level
    _check(flat, plane, [(2, 2)] * 3, "mean")
    repo.lock_node("sparse and flat")
    _check(repo.get_array("plane"), plane, [(2, 2)] * 3, "mean")


def test_resizing_in_the_node_that_built_the_pyramid(store: DicedStore) -> None:
    repo = _repo(store)
    rng = np.random.default_rng(12)
    data = rng.integers(0, 256, (21, 19, 33)).astype(np.uint8)
    arr = repo.create_array("vol", np.uint8, shape=data.shape, chunks=(8, 8, 8))
    arr[...] = data
    arr.build_pyramid(levels=2)
    for shape in ((23, 19, 40), (13, 11, 33)):  # grow an odd edge, then shrink
        arr.resize(shape)
        grown = np.zeros(shape, np.uint8)
        common = tuple(slice(0, min(a, b)) for a, b in zip(shape, data.shape, strict=True))
        grown[common] = data[common]
        data = grown
        arr.update_pyramid()
        _check(arr, data, [(2, 2, 2)] * 2, "mean")


def test_a_level_deleted_behind_diceds_back_is_rebuilt_at_lock(store: DicedStore) -> None:
    repo = _repo(store)
    data = np.random.default_rng(13).integers(0, 256, (16, 16, 16)).astype(np.uint8)
    arr = repo.create_array("vol", np.uint8, shape=data.shape, chunks=(4, 4, 4))
    arr[...] = data
    arr.build_pyramid(levels=3)
    repo.lock_node("built")
    repo.change_version(repo.create_branch("zarr client"))
    zarr.open_group(repo.zarr_store(), mode="r+").__delitem__("vol.s2")
    assert "vol.s2" not in dict(repo.list_instances())
    repo.lock_node("levels restored")
    _check(repo.get_array("vol"), data, [(2, 2, 2)] * 3, "mean")
