"""Merge and diff against brute force: numpy three-way merges and chunk-by-chunk comparisons.

* Branches with disjoint voxel edits merge into the ancestor with both edit sets applied,
  whatever the order and however many branches.
* Conflicts are reported exactly where two branches wrote different values to a voxel
  (count and bounding box per chunk), and each policy resolves them as numpy says.
* ``diff(a, b)`` lists exactly the chunks whose contents differ (added, removed or
  modified) with the exact voxel counts, and ``diff(a, a)`` is empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diced import DicedRepo, DicedStore, MergeConflictError

SHAPE = (10, 13)
CHUNKS = (4, 5)
GRID = tuple(-(-n // c) for n, c in zip(SHAPE, CHUNKS, strict=True))
DTYPES = [np.uint8, np.int16, np.float32]

Edits = dict[tuple[int, int], int]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

voxels = st.tuples(st.integers(0, SHAPE[0] - 1), st.integers(0, SHAPE[1] - 1))
edits = st.dictionaries(voxels, st.integers(0, 3), max_size=25)


@pytest.fixture
def repo() -> Iterator[DicedRepo]:
    with DicedStore(f"memory://merge-props/{uuid.uuid4().hex}") as store:
        yield store.create_repo("r")


def _fresh_repo() -> tuple[DicedStore, DicedRepo]:
    store = DicedStore(f"memory://merge-props/{uuid.uuid4().hex}")
    return store, store.create_repo("r")


def _base(repo: DicedRepo, dtype: Any, seed: int) -> npt.NDArray[Any]:
    """Lock a base version holding random values (some chunks all zero: not stored)."""
    data = np.random.default_rng(seed).integers(0, 3, SHAPE).astype(dtype)
    data[:CHUNKS[0], :CHUNKS[1]] = 0
    repo.create_array("a", dtype, shape=SHAPE, chunks=CHUNKS)[...] = data
    repo.lock_node("base")
    return data


def _branch(repo: DicedRepo, base: str, name: str, edit: Edits, dtype: Any) -> str:
    """A locked branch of ``base`` with ``edit`` applied; the repo ends where it began."""
    repo.change_version(base)
    repo.change_version(repo.create_branch(name, name))
    array = repo.get_array("a")
    for (i, j), value in edit.items():
        array[i, j] = dtype(value)
    repo.lock_node(name)
    return repo.uuid


def _applied(data: npt.NDArray[Any], *edit_sets: Edits) -> npt.NDArray[Any]:
    out = data.copy()
    for edit in edit_sets:
        for (i, j), value in edit.items():
            out[i, j] = value
    return out


def _read(repo: DicedRepo, version: str) -> npt.NDArray[Any]:
    repo.change_version(version)
    result: npt.NDArray[Any] = repo.get_array("a")[...]
    return result


def _chunk(coords: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, CHUNKS, strict=True))


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from(DTYPES), count=st.integers(2, 3),
       seed=st.integers(0, 2**16))
def test_disjoint_edits_merge_into_both_applied(data: st.DataObject, dtype: Any, count: int,
                                                 seed: int) -> None:
    store, repo = _fresh_repo()
    with store:
        base_data = _base(repo, dtype, seed)
        base = repo.uuid
        owner = data.draw(st.dictionaries(voxels, st.integers(0, count - 1), max_size=40))
        values = data.draw(st.lists(st.integers(0, 3), min_size=len(owner),
                                    max_size=len(owner)))
        edit_sets: list[Edits] = [{} for _ in range(count)]
        for (voxel, side), value in zip(owner.items(), values, strict=True):
            edit_sets[side][voxel] = value
        branches = [_branch(repo, base, f"b{i}", e, dtype) for i, e in enumerate(edit_sets)]
        expected = _applied(base_data, *edit_sets)
        order = data.draw(st.permutations(range(count)))
        merged = repo.merge([branches[i] for i in order], "merge", name="merged")
        assert np.array_equal(_read(repo, merged), expected)
        # A chunk changed by one branch only is that branch's blob, not a re-encoding.
        digests = repo.get_array("a").chunk_digests()
        for i, edit in enumerate(edit_sets):
            touched = {(a // CHUNKS[0], b // CHUNKS[1]) for a, b in edit}
            others = {(a // CHUNKS[0], b // CHUNKS[1]) for j, e in enumerate(edit_sets)
                      if j != i for a, b in e}
            repo.change_version(branches[i])
            mine = repo.get_array("a").chunk_digests()
            for chunk in touched - others:
                assert digests.get(chunk) == mine.get(chunk)


@SETTINGS
@given(ours=edits, theirs=edits, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
       policy=st.sampled_from(["fail", "ours", "theirs", "max"]))
def test_conflicts_are_exactly_the_voxels_written_differently(
        ours: Edits, theirs: Edits, dtype: Any, seed: int, policy: str) -> None:
    store, repo = _fresh_repo()
    with store:
        base_data = _base(repo, dtype, seed)
        base = repo.uuid
        a = _branch(repo, base, "ours", ours, dtype)
        b = _branch(repo, base, "theirs", theirs, dtype)
        va, vb = _applied(base_data, ours), _applied(base_data, theirs)
        changed_a, changed_b = va != base_data, vb != base_data
        clash = changed_a & changed_b & (va != vb)

        # The brute-force conflict report: per chunk, count and bounding box.
        expected = {}
        for coords in np.ndindex(*GRID):
            mask = clash[_chunk(coords)]
            if mask.any():
                rows, cols = np.nonzero(mask)
                origin = (coords[0] * CHUNKS[0], coords[1] * CHUNKS[1])
                expected[coords] = (int(mask.sum()), (
                    (origin[0] + int(rows.min()), origin[0] + int(rows.max()) + 1),
                    (origin[1] + int(cols.min()), origin[1] + int(cols.max()) + 1)))
        found = {c.chunk: (c.voxels, c.box) for c in repo.merge_conflicts([a, b])}
        assert found == expected

        def maximum(array: str, chunk: tuple[int, ...], base_block: Any, ours_block: Any,
                    theirs_block: Any) -> Any:
            assert array == "a" and base_block.shape == CHUNKS
            return np.maximum(ours_block, theirs_block)

        on_conflict: Any = maximum if policy == "max" else policy
        if policy == "fail" and clash.any():
            before = len(repo.list_nodes())
            with pytest.raises(MergeConflictError) as failure:
                repo.merge([a, b], "merge", name="merged", on_conflict=on_conflict)
            assert {c.chunk for c in failure.value.conflicts} == set(expected)
            assert len(repo.list_nodes()) == before
            return
        merged = repo.merge([a, b], "merge", name="merged", on_conflict=on_conflict)
        winner = {"fail": va, "ours": va, "theirs": vb, "max": np.maximum(va, vb)}[policy]
        result = np.where(changed_b, vb, va)
        result[clash] = winner[clash]
        assert np.array_equal(_read(repo, merged), result)


@SETTINGS
@given(first=edits, second=edits, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
       layout=st.sampled_from(["ancestor", "siblings", "open"]))
def test_diff_lists_exactly_the_chunks_that_differ(first: Edits, second: Edits, dtype: Any,
                                                    seed: int, layout: str) -> None:
    store, repo = _fresh_repo()
    with store:
        base_data = _base(repo, dtype, seed)
        base = repo.uuid
        a = _branch(repo, base, "a", first, dtype)
        if layout == "open":  # b: an open child of a with more edits
            repo.change_version(a)
            repo.change_version(repo.create_branch("open", "b"))
            for (i, j), value in second.items():
                repo.get_array("a")[i, j] = dtype(value)
            b, vb = repo.uuid, _applied(base_data, first, second)
        else:
            b = _branch(repo, a if layout == "ancestor" else base, "b", second, dtype)
            vb = _applied(base_data, *([first, second] if layout == "ancestor" else [second]))
        va = _applied(base_data, first)
        for x, y, vx, vy in ((a, b, va, vb), (b, a, vb, va)):
            diff = repo.diff(x, y)
            stored_x = {c for c in np.ndindex(*GRID) if vx[_chunk(c)].any()}
            stored_y = {c for c in np.ndindex(*GRID) if vy[_chunk(c)].any()}
            differ = {c for c in np.ndindex(*GRID)
                      if not np.array_equal(vx[_chunk(c)], vy[_chunk(c)])}
            if not differ:
                assert not diff and diff.is_empty
                continue
            change = diff.arrays["a"]
            assert change.status == "modified" and not change.metadata_changed
            assert set(change.added) == differ - stored_x
            assert set(change.removed) == differ - stored_y
            assert set(change.modified) == differ & stored_x & stored_y
            counts = diff.voxels("a")
            assert set(counts) == differ
            for coords, detail in counts.items():
                assert detail.voxels == int((vx[_chunk(coords)] != vy[_chunk(coords)]).sum())
        for version in (a, b):
            assert repo.diff(version, version).is_empty


def test_diff_of_arrays_and_files_created_deleted_replaced(repo: DicedRepo) -> None:
    repo.create_array("kept", np.uint8, shape=(8,), chunks=(4,))[...] = 1
    repo.create_array("gone", np.uint8, shape=(8,), chunks=(4,))[...] = 2
    repo.create_array("again", np.uint8, shape=(8,), chunks=(4,))[...] = 3
    repo.create_array("resized", np.uint8, shape=(8,), chunks=(4,))[...] = 4
    repo.upload_filedata("same.txt", b"s")
    repo.upload_filedata("edit.txt", b"1")
    repo.upload_filedata("drop.txt", b"x")
    repo.lock_node("a")
    a = repo.uuid
    repo.change_version(repo.create_branch("b"))
    repo.delete_array("gone")
    repo.delete_array("again")
    repo.create_array("again", np.uint8, shape=(8,), chunks=(4,))[:4] = 3
    repo.create_array("new", np.uint16, shape=(3, 3), chunks=(2, 2))[0, 0] = 5
    repo.get_array("resized").resize((4,))
    repo.upload_filedata("edit.txt", b"2")
    repo.delete_file("drop.txt")
    repo.upload_filedata("add.txt", b"+")
    diff = repo.diff(a)
    assert set(diff.arrays) == {"gone", "again", "new", "resized"}
    assert diff.arrays["gone"].status == "deleted"
    assert diff.arrays["gone"].removed == ((0,), (1,))
    assert diff.arrays["again"].status == "replaced"
    assert diff.arrays["again"].removed == ((1,),) and not diff.arrays["again"].modified
    assert diff.arrays["new"].status == "created" and diff.arrays["new"].added == ((0, 0),)
    resized = diff.arrays["resized"]
    assert resized.status == "modified" and resized.metadata_changed
    assert resized.removed == ((1,),)
    assert (diff.files_added, diff.files_removed, diff.files_modified) == (
        ("add.txt",), ("drop.txt",), ("edit.txt",))
    assert diff.voxels("new")[(0, 0)].voxels == 1
    assert diff.voxels("gone")[(1,)].voxels == 4
    only = repo.diff(a, arrays=["new"])
    assert set(only.arrays) == {"new"}


@SETTINGS
@given(near=st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=6),
       far=st.sets(st.tuples(st.integers(0, 2**20), st.integers(0, 2**20)), max_size=6),
       cleared=st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=4))
def test_diff_of_trees_of_different_heights(near: set[tuple[int, int]],
                                            far: set[tuple[int, int]],
                                            cleared: set[tuple[int, int]]) -> None:
    """A child that writes far from the origin has a taller tree than its parent; the diff
    still lists exactly the chunks whose digests differ (ground truth: chunk_digests)."""
    store, repo = _fresh_repo()
    with store:
        array = repo.create_array("a", np.uint8, dims=2, chunks=(1, 1))
        for i, j in near:
            array[i, j] = 1 + (i + j) % 5
        repo.lock_node("near the origin")
        parent = repo.uuid
        repo.change_version(repo.create_branch("far"))
        array = repo.get_array("a")
        for i, j in far:
            array[i, j] = 7
        for i, j in cleared:
            array[i, j] = 0
        repo.lock_node("far away")
        child = repo.uuid
        digests = {}
        for version in (parent, child):
            repo.change_version(version)
            digests[version] = repo.get_array("a").chunk_digests()
        expected = {c for c in digests[parent].keys() | digests[child].keys()
                    if digests[parent].get(c) != digests[child].get(c)}
        for a, b in ((parent, child), (child, parent)):
            diff = repo.diff(a, b)
            found = set(diff.arrays["a"].chunks) if "a" in diff.arrays else set()
            assert found == expected
