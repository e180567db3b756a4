"""Misuse of the public API: each raises the specific diced exception and changes nothing.

Every test checks three things: the exception class, that its message names the problem,
and that the store reads exactly as it did before the failed call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _checks import raises as _raises
from _checks import state as _state

from diced import (
    AlreadyExistsError,
    ArrayDtype,
    DicedArray,
    DicedRepo,
    DicedStore,
    FormatVersionError,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
)


@pytest.fixture
def repo(store: DicedStore) -> DicedRepo:
    return store.create_repo("repo")


@pytest.fixture
def populated(repo: DicedRepo) -> DicedRepo:
    """A repo whose open root holds a bounded array, an unbounded one and a file."""
    em = repo.create_array("em", ArrayDtype.uint8, shape=(10, 10), chunks=(4, 4))
    em[...] = np.arange(100, dtype=np.uint8).reshape(10, 10)
    vol = repo.create_array("vol", ArrayDtype.uint16)
    vol[3:5, 4:6, 5:7] = 9
    repo.upload_filedata("notes.txt", "keep me")
    return repo


# -- locked nodes and read-only handles ------------------------------------------------------


def test_writes_to_a_locked_node_raise_locked_and_change_nothing(populated: DicedRepo,
                                                                 store: DicedStore) -> None:
    stale = populated.get_array("em")  # obtained while the node was open
    populated.lock_node("v1")
    before = _state(populated)
    fresh = populated.get_array("em")
    assert fresh.locked is True
    other_handle = store.open_repo(uuid=populated.get_current_version()).get_array("em")

    for arr in (stale, fresh, other_handle):
        _raises(LockedError, "locked", lambda a=arr: a.__setitem__((0, 0), 200))
        _raises(LockedError, "locked", lambda a=arr: a.__setitem__(slice(None), 0))
    _raises(LockedError, ("locked", "read-only"), lambda: fresh.resize(5, 5))
    _raises(LockedError, "locked", lambda: populated.create_array("new", ArrayDtype.uint8))
    _raises(LockedError, "locked", lambda: populated.delete_array("em"))
    _raises(LockedError, "locked", lambda: populated.upload_filedata("notes.txt", "changed"))
    _raises(LockedError, "locked", lambda: populated.upload_filedata("new.txt", "x"))
    _raises(LockedError, "locked", lambda: populated.delete_file("notes.txt"))
    _raises(LockedError, "locked", lambda: populated.lock_node("again"))

    assert _state(populated) == before
    assert stale[0, 0] == 0
    assert store.open_repo("repo").get_array("em")[0, 0] == 0


def test_readonly_handle_refuses_every_write(populated: DicedRepo, store: DicedStore) -> None:
    before = _state(populated)
    ro = store.open_repo("repo", readonly=True)
    assert ro.readonly is True
    assert ro.locked is False  # the node itself is open; only this handle is read-only
    arr = ro.get_array("em")
    assert arr.locked is True
    assert arr[9, 9] == 99  # reads work

    calls: list[Callable[[], Any]] = [
        lambda: arr.__setitem__((0, 0), 1),
        lambda: arr.resize(3, 3),
        lambda: ro.get_array("vol").__setitem__((0, 0, 0), 1),
        lambda: ro.create_array("new", ArrayDtype.uint8),
        lambda: ro.delete_array("em"),
        lambda: ro.upload_filedata("notes.txt", "changed"),
        lambda: ro.delete_file("notes.txt"),
        lambda: ro.lock_node("not allowed"),
        lambda: ro.create_branch("not allowed"),
    ]
    for call in calls:
        _raises(LockedError, ("read-only", "readonly"), call)
    assert _state(populated) == before
    assert populated.locked is False

    # A read-only handle of a locked node cannot branch either.
    populated.lock_node("v1")
    nodes = len(populated.list_nodes())
    ro_locked = store.open_repo(uuid=populated.get_current_version(), readonly=True)
    _raises(LockedError, ("read-only", "readonly"), lambda: ro_locked.create_branch("x"))
    assert len(populated.list_nodes()) == nodes


def test_readonly_zarr_store_refuses_writes(populated: DicedRepo, store: DicedStore) -> None:
    import zarr

    ro = store.open_repo("repo", readonly=True)
    z = zarr.open_array(ro.zarr_store(), path="em")
    with pytest.raises(ValueError, match="read-only"):
        z[0, 0] = 1
    assert populated.get_array("em")[0, 0] == 0


# -- version graph ---------------------------------------------------------------------------


def test_branching_an_open_node(repo: DicedRepo) -> None:
    before = _state(repo)
    _raises(InvalidInputError, "lock", lambda: repo.create_branch("too early"))
    _raises(InvalidInputError, "lock", lambda: repo.create_branch("too early", name="side"))
    assert _state(repo) == before
    assert len(repo.list_nodes()) == 1


def test_duplicate_repo_name(store: DicedStore, populated: DicedRepo) -> None:
    repos = store.list_repos()
    _raises(AlreadyExistsError, "repo", lambda: store.create_repo("repo", "second"))
    assert store.list_repos() == repos
    reopened = store.open_repo("repo")
    assert reopened.description == ""
    assert reopened.download_filedata("notes.txt") == b"keep me"


def test_duplicate_array_name(populated: DicedRepo) -> None:
    before = _state(populated)
    _raises(AlreadyExistsError, "em", lambda: populated.create_array("em", ArrayDtype.uint8))
    _raises(AlreadyExistsError, "em",
            lambda: populated.create_array("em", ArrayDtype.uint64, shape=(2, 2)))
    assert _state(populated) == before


def test_duplicate_array_name_in_child_of_locked_parent(populated: DicedRepo) -> None:
    populated.lock_node("v1")
    populated.change_version(populated.create_branch("child"))
    before = _state(populated)
    _raises(AlreadyExistsError, "em", lambda: populated.create_array("em", ArrayDtype.uint8))
    assert _state(populated) == before


def test_duplicate_branch_name(repo: DicedRepo) -> None:
    repo.lock_node("root")
    side = repo.create_branch("side", name="side")
    other = repo.create_branch("other", name="other")
    before = _state(repo)
    _raises(AlreadyExistsError, "side", lambda: repo.create_branch("again", name="side"))
    assert _state(repo) == before
    # Branch names are unique repo-wide, also when branching from another node;
    # "master" exists from the start.
    repo.change_version(side)
    repo.lock_node("side done")
    before = _state(repo)
    _raises(AlreadyExistsError, "other", lambda: repo.create_branch("again", name="other"))
    _raises(AlreadyExistsError, "master", lambda: repo.create_branch("m", name="master"))
    assert _state(repo) == before
    # Naming the node's own branch continues it (documented), once.
    more = repo.create_branch("more side", name="side")
    assert repo.node_record(more).parents == (side,)
    assert repo.node_record(more).branch == "side"
    _raises(AlreadyExistsError, "side", lambda: repo.create_branch("again", name="side"))
    assert other != more


def test_continuing_a_branch_twice_without_a_name(repo: DicedRepo) -> None:
    repo.lock_node("root")
    child = repo.create_branch("first child")
    before = _state(repo)
    _raises(AlreadyExistsError, ("already has a child", "branch"),
            lambda: repo.create_branch("second child"))
    assert _state(repo) == before
    assert [n.uuid for n in repo.list_nodes()] == [repo.get_current_version(), child]
    # Naming the branch is the way out.
    other = repo.create_branch("second child", name="other")
    assert other not in (child, repo.get_current_version())


def test_bad_branch_and_lock_arguments(repo: DicedRepo) -> None:
    before = _state(repo)
    _raises(InvalidInputError, "message", lambda: repo.lock_node(None))  # type: ignore[arg-type]
    assert _state(repo) == before
    repo.lock_node("root")
    before = _state(repo)
    _raises(InvalidInputError, "branch name", lambda: repo.create_branch("x", name="a:b"))
    _raises(InvalidInputError, "branch name", lambda: repo.create_branch("x", name=""))
    _raises(InvalidInputError, "message", lambda: repo.create_branch(42))  # type: ignore[arg-type]
    assert _state(repo) == before


# -- unknown names ---------------------------------------------------------------------------


def test_unknown_repo(store: DicedStore, populated: DicedRepo) -> None:
    repos = store.list_repos()
    _raises(NotFoundError, "nope", lambda: store.open_repo("nope"))
    _raises(NotFoundError, "nope", lambda: store.get_repouuid("nope"))
    _raises(NotFoundError, "nope", lambda: store.delete_repo("nope"))
    assert store.list_repos() == repos
    # NotFoundError is also a KeyError, as plain-Python code expects.
    with pytest.raises(KeyError):
        store.open_repo("nope")


def test_unknown_uuid(store: DicedStore, populated: DicedRepo) -> None:
    before = _state(populated)
    missing = "0" * 32 if not populated.get_current_version().startswith("0") else "f" * 32
    _raises(NotFoundError, missing[:8], lambda: store.open_repo(uuid=missing))
    _raises(NotFoundError, missing[:8], lambda: populated.change_version(missing))
    _raises(NotFoundError, "zz", lambda: populated.change_version("zz"))
    _raises(NotFoundError, "nobranch", lambda: populated.change_version(":nobranch"))
    assert _state(populated) == before


def test_uuid_of_another_repo(store: DicedStore, populated: DicedRepo) -> None:
    other = store.create_repo("other")
    before = _state(populated)
    _raises(NotFoundError, other.get_current_version()[:8],
            lambda: populated.change_version(other.get_current_version()))
    _raises(InvalidInputError, "other",
            lambda: store.open_repo("repo", uuid=other.get_current_version()))
    _raises(InvalidInputError, ("name", "uuid"), lambda: store.open_repo())
    assert _state(populated) == before


def test_unknown_array_and_file(populated: DicedRepo) -> None:
    before = _state(populated)
    _raises(NotFoundError, "missing", lambda: populated.get_array("missing"))
    _raises(NotFoundError, "missing", lambda: populated.delete_array("missing"))
    _raises(NotFoundError, "missing.txt", lambda: populated.download_filedata("missing.txt"))
    _raises(NotFoundError, "missing.txt", lambda: populated.delete_file("missing.txt"))
    assert _state(populated) == before


def test_ambiguous_uuid_prefix(store: DicedStore, repo: DicedRepo) -> None:
    repo.lock_node("root")
    root = repo.get_current_version()
    seen = {root[0]: root}
    clash = None
    for i in range(16):  # 17 nodes cannot all start with different hex digits
        child = repo.create_branch(f"child {i}", name=f"b{i}")
        if child[0] in seen:
            clash = (seen[child[0]], child)
            break
        seen[child[0]] = child
    assert clash is not None
    first, second = clash
    common = next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    prefix = first[:common]
    before = _state(repo)
    _raises(InvalidInputError, ("ambiguous", prefix), lambda: repo.change_version(prefix))
    _raises(InvalidInputError, ("ambiguous", "several", prefix),
            lambda: store.open_repo(uuid=prefix))
    assert _state(repo) == before
    # One more digit resolves it.
    repo.change_version(second[:common + 1])
    assert repo.get_current_version() == second


def test_prefix_matching_nodes_of_two_repos(store: DicedStore) -> None:
    roots = {}
    while True:  # repo roots until two share a first digit (at most 17 repos)
        r = store.create_repo(f"r{len(roots)}")
        digit = r.get_current_version()[0]
        if digit in roots:
            break
        roots[digit] = r
    repos = store.list_repos()
    _raises(InvalidInputError, ("several", "ambiguous"), lambda: store.open_repo(uuid=digit))
    assert store.list_repos() == repos


# -- indices and values ----------------------------------------------------------------------


def test_wrong_number_of_indices(populated: DicedRepo) -> None:
    before = _state(populated)
    em, vol = populated.get_array("em"), populated.get_array("vol")
    _raises(InvalidIndexError, ("too many", "indices", "dimension"), lambda: em[0, 0, 0])
    _raises(InvalidIndexError, ("too many", "indices", "dimension"), lambda: vol[0, 0, 0, 0])
    _raises(InvalidIndexError, ("too many", "indices", "dimension"),
            lambda: em.__setitem__((0, 0, 0), 1))
    _raises(InvalidIndexError, ("too many", "indices", "dimension"),
            lambda: vol.__setitem__((slice(0, 2),) * 4, 1))
    _raises(InvalidIndexError, ("too many", "indices", "dimension"),
            lambda: em.__setitem__((slice(None, None, -1), 0, 0), 1))
    _raises(InvalidIndexError, "ellipsis", lambda: em[..., ...])
    assert _state(populated) == before


def test_out_of_bounds_on_bounded_array(populated: DicedRepo) -> None:
    before = _state(populated)
    em = populated.get_array("em")
    for index in [(10, 0), (0, 10), (-11, 0), (0, -11), (10, slice(None))]:
        _raises(InvalidIndexError, ("bound", "index", "out of"), lambda i=index: em[i])
        _raises(InvalidIndexError, ("bound", "index", "out of"),
                lambda i=index: em.__setitem__(i, 1))
    _raises(InvalidIndexError, ("bound", "index", "out of"),
            lambda: em.__setitem__((slice(None, None, -1), 12), 1))
    assert _state(populated) == before
    # Slices clip to the shape, as in numpy.
    assert em[8:20, 0].shape == (2,)
    assert np.array_equal(em[8:20, 0], np.arange(100, dtype=np.uint8).reshape(10, 10)[8:20, 0])


def test_unsupported_index_types(populated: DicedRepo) -> None:
    before = _state(populated)
    em = populated.get_array("em")
    _raises(InvalidIndexError, ("index", "unsupported"), lambda: em["a"])
    _raises(InvalidIndexError, ("index", "unsupported"), lambda: em[1.5, 0])
    _raises(InvalidIndexError, ("index", "unsupported"), lambda: em.__setitem__(("a", 0), 1))
    assert _state(populated) == before


def _refuses_value_shape(arr: DicedArray, sel: Any, value: np.ndarray) -> None:
    """numpy refuses ``oracle[sel] = value``; diced must too, blaming the value, not the index."""
    oracle = np.zeros(arr.shape if not arr.unbounded else (16,) * arr.ndim, arr.dtype)
    with pytest.raises(ValueError, match="broadcast"):
        oracle[sel] = value
    exc = _raises(InvalidInputError, ("broadcast", str(value.shape)),
                  lambda: arr.__setitem__(sel, value))
    assert not isinstance(exc, InvalidIndexError), exc


@pytest.mark.parametrize(("name", "sel", "value_shape"), [
    ("em", (slice(0, 2), slice(0, 2)), (3, 3)),  # larger than the selection
    ("em", (slice(0, 3), slice(0, 3)), (2, 2)),  # smaller than the selection
    ("em", slice(None), (7,)),
    ("em", (slice(None, None, -1), slice(0, 3)), (3, 3)),  # negative step
    ("em", (slice(None, None, -2), 0), (2,)),
    ("vol", (0, slice(0, 4), slice(0, 4)), (4, 5)),
    ("vol", (slice(0, 1), slice(0, 2), slice(0, 2)), (2, 1, 2, 2)),
])
def test_value_shape_that_does_not_broadcast(populated: DicedRepo, name: str, sel: Any,
                                             value_shape: tuple[int, ...]) -> None:
    before = _state(populated)
    arr = populated.get_array(name)
    _refuses_value_shape(arr, sel, np.ones(value_shape, arr.dtype))
    assert _state(populated) == before


@pytest.mark.parametrize(("dtype", "value"), [
    (ArrayDtype.uint8, 300),
    (ArrayDtype.uint8, -1),
    (ArrayDtype.uint16, -1),
    (ArrayDtype.uint16, 70000),
    (ArrayDtype.uint64, 2**64),
    (ArrayDtype.uint64, -5),
    (ArrayDtype.uint8, float("nan")),
    (ArrayDtype.uint32, "seven"),
    (ArrayDtype.uint8, [1, "x"]),
])
def test_values_the_dtype_cannot_hold(repo: DicedRepo, dtype: ArrayDtype, value: Any) -> None:
    arr = repo.create_array("a", dtype, shape=(4, 4))
    arr[...] = 7
    before = _state(repo)
    np_name = np.dtype(dtype.value).name
    _raises(InvalidInputError, (np_name, "cannot store"), lambda: arr.__setitem__((1, 1), value))
    _raises(InvalidInputError, (np_name, "cannot store"),
            lambda: arr.__setitem__((slice(None, None, -1), 0), value))
    assert _state(repo) == before
    assert np.array_equal(arr[...], np.full((4, 4), 7, dtype.value))


# -- store locations -------------------------------------------------------------------------


def test_store_with_newer_format_version(tmp_path: Path) -> None:
    location = tmp_path / "future.diced"
    location.mkdir()
    header = json.dumps({"format": "diced", "format_version": 999})
    (location / "diced.json").write_text(header)
    _raises(FormatVersionError, "999", lambda: DicedStore(str(location)))
    exc = _raises(FormatVersionError, "upgrade", lambda: DicedStore(str(location)))
    assert "version" in str(exc)
    assert (location / "diced.json").read_text() == header
    assert sorted(p.name for p in location.iterdir()) == ["diced.json"]


def test_store_with_unreadable_header(tmp_path: Path) -> None:
    location = tmp_path / "broken.diced"
    location.mkdir()
    (location / "diced.json").write_text("{not json")
    _raises(FormatVersionError, "diced.json", lambda: DicedStore(str(location)))
    (location / "diced.json").write_text(json.dumps({"format": "zarr", "format_version": 1}))
    _raises(FormatVersionError, ("format", "diced.json"), lambda: DicedStore(str(location)))
    assert sorted(p.name for p in location.iterdir()) == ["diced.json"]


def test_store_whose_parent_does_not_exist(tmp_path: Path) -> None:
    location = tmp_path / "no" / "such" / "store.diced"
    _raises(NotFoundError, ("does not exist", str(tmp_path / "no")),
            lambda: DicedStore(str(location)))
    assert not (tmp_path / "no").exists()


def test_non_empty_directory_that_is_not_a_store(tmp_path: Path) -> None:
    location = tmp_path / "photos"
    location.mkdir()
    (location / "holiday.jpg").write_bytes(b"\xff\xd8")
    _raises(InvalidInputError, ("not a diced store", "not empty"),
            lambda: DicedStore(str(location)))
    assert sorted(p.name for p in location.iterdir()) == ["holiday.jpg"]
    assert (location / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_location_that_is_a_file(tmp_path: Path) -> None:
    location = tmp_path / "file.txt"
    location.write_text("hi")
    _raises(InvalidInputError, ("file", "directory"), lambda: DicedStore(str(location)))
    assert location.read_text() == "hi"


def test_store_arguments(tmp_path: Path) -> None:
    location = tmp_path / "s.diced"
    _raises(InvalidInputError, "port", lambda: DicedStore(str(location), port=-1))
    _raises(InvalidInputError, "port", lambda: DicedStore(str(location), port="8000"))
    _raises(InvalidInputError, "permissionfile",
            lambda: DicedStore(str(location), permissionfile="key.json"))
    _raises(InvalidInputError, "gopher", lambda: DicedStore("gopher://example/x"))
    _raises(InvalidInputError, "location", lambda: DicedStore(""))
    assert not location.exists()


def test_bad_repo_names(store: DicedStore) -> None:
    for name in ["", "a\nb", "x" * 201, 7]:
        _raises(InvalidInputError, "repo name", lambda n=name: store.create_repo(n))
    assert store.list_repos() == []


# -- array creation --------------------------------------------------------------------------


def _creation_is_refused(repo: DicedRepo, words: str | tuple[str, ...], **kwargs: Any) -> None:
    before = _state(repo)
    args = {"name": "arr", "dtype": ArrayDtype.uint8, **kwargs}
    _raises(InvalidInputError, words, lambda: repo.create_array(**args))
    assert _state(repo) == before


@pytest.mark.parametrize("name", ["", ".hidden", "-dash", "a/b", "a b", "x" * 201, "é", 5,
                                  "a\x00b"])
def test_bad_array_names(repo: DicedRepo, name: Any) -> None:
    _creation_is_refused(repo, "name", name=name)


@pytest.mark.parametrize("dtype", [np.complex64, "complex128", str, "U4", "S10", object,
                                   ">u2", "not-a-dtype", np.datetime64])
def test_bad_array_dtypes(repo: DicedRepo, dtype: Any) -> None:
    _creation_is_refused(repo, "dtype", dtype=dtype)


@pytest.mark.parametrize("dims", [0, -1, 2.5, "3"])
def test_bad_array_dims(repo: DicedRepo, dims: Any) -> None:
    _creation_is_refused(repo, "dims", dims=dims)


@pytest.mark.parametrize(("shape", "dims"), [((3, 3, 3), 2), ((4, -1), 3), ((), 3)])
def test_bad_array_shapes(repo: DicedRepo, shape: tuple[int, ...], dims: int) -> None:
    _creation_is_refused(repo, ("shape", "dims"), shape=shape, dims=dims)


@pytest.mark.parametrize(("chunks", "dims"), [((0, 64, 64), 3), ((64, 64), 3), ((-1,), 1),
                                              ((8, 8, 8), 2)])
def test_bad_array_chunks(repo: DicedRepo, chunks: tuple[int, ...], dims: int) -> None:
    _creation_is_refused(repo, "chunks", chunks=chunks, dims=dims)


@pytest.mark.parametrize(("dtype", "dims"), [(ArrayDtype.uint8, 3), (ArrayDtype.uint16, 3),
                                             (ArrayDtype.uint32, 3), (np.int64, 3),
                                             (ArrayDtype.uint64, 2)])
def test_islabel3d_needs_3d_uint64(repo: DicedRepo, dtype: Any, dims: int) -> None:
    _creation_is_refused(repo, ("uint64", "label"), dtype=dtype, dims=dims, islabel3D=True)


@pytest.mark.parametrize("dtype", [ArrayDtype.uint16, ArrayDtype.uint64, np.float32, np.int8])
def test_lossycompression_needs_uint8(repo: DicedRepo, dtype: Any) -> None:
    _creation_is_refused(repo, ("uint8", "lossy"), dtype=dtype, lossycompression=True)


def test_bad_resize(populated: DicedRepo) -> None:
    before = _state(populated)
    em = populated.get_array("em")
    _raises(InvalidInputError, "resize", lambda: em.resize(5))
    _raises(InvalidInputError, "resize", lambda: em.resize(5, 5, 5))
    _raises(InvalidInputError, "resize", lambda: em.resize(-1, 5))
    _raises(InvalidInputError, "resize", lambda: em.resize(2.5, 5))
    assert em.shape == (10, 10)
    assert _state(populated) == before


def test_bad_file_arguments(populated: DicedRepo) -> None:
    before = _state(populated)
    _raises(InvalidInputError, "file name", lambda: populated.upload_filedata("", b"x"))
    _raises(InvalidInputError, "file name", lambda: populated.upload_filedata("a\x00b", b"x"))
    _raises(InvalidInputError, "file name", lambda: populated.upload_filedata("x" * 1025, b"x"))
    _raises(InvalidInputError, "file name",
            lambda: populated.upload_filedata(3, b"x"))  # type: ignore[arg-type]
    _raises(InvalidInputError, "file name", lambda: populated.download_filedata(""))
    _raises(InvalidInputError, "file name", lambda: populated.delete_file(""))
    _raises(InvalidInputError, "bytes", lambda: populated.upload_filedata("n", 42))  # type: ignore[arg-type]
    _raises(InvalidInputError, "bytes",
            lambda: populated.upload_filedata("n", ["a"]))  # type: ignore[arg-type]
    assert _state(populated) == before
