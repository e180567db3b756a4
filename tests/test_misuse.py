"""Misuse found by the hostile-user review (issue 8, defects 9-11): clear diced errors, no change.

Unbounded selections fail at once and say how to slice; malformed arguments raise a
DicedException naming the fix instead of a raw exception or a silent truncation; names
whose encoding ends in dots work; a refused create leaves nothing behind; an unfinished
lock is described as what it is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _checks import raises, state

from diced import (
    DicedRepo,
    DicedStore,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    ReadOnlyStoreError,
)
from diced.versioning import keys

# -- defect 9: unbounded arrays ---------------------------------------------------------------


@pytest.fixture
def unbounded(repo: DicedRepo) -> DicedRepo:
    arr = repo.create_array("u", np.uint8)
    arr[0:2, 0:2, 0:2] = 5
    return repo


@pytest.mark.parametrize("selection", [
    0, (0,), (0, 0), Ellipsis, (slice(None), 0, 0), (slice(5, None), 0, 0),
    (0, 0, slice(3, None)), (0, Ellipsis), (-1, 0, 0), (slice(-3, -1), 0, 0),
    (0, 0, slice(None, 2, -1)), (np.array([-1, 2]), 0, 0),
])
def test_unbounded_selections_fail_at_once(unbounded: DicedRepo, selection: Any) -> None:
    arr = unbounded.get_array("u")
    before = state(unbounded)
    started = time.monotonic()
    error = raises(InvalidIndexError, "unbounded", lambda: arr[selection])
    assert "0:64, 0:64, 0:64" in str(error)  # names the extents to slice with
    raises(InvalidIndexError, "unbounded", lambda: arr.__setitem__(selection, 1))
    assert time.monotonic() - started < 30  # "at once": it never walks 2**31 chunks
    assert state(unbounded) == before


def test_bounded_selections_of_unbounded_arrays_work(unbounded: DicedRepo) -> None:
    arr = unbounded.get_array("u")
    assert np.array_equal(arr[0:2, 0:2, 0:2], np.full((2, 2, 2), 5, np.uint8))
    assert np.array_equal(arr[arr.get_extents()][:2, :2, :2], np.full((2, 2, 2), 5, np.uint8))
    assert arr[1, 1, 1] == 5
    assert np.array_equal(arr[3:0:-1, 1, 1], [0, 0, 5])
    far = 2**31 - 2
    arr[far, far, far] = 7  # the last position of every axis
    assert arr[far, far, far] == 7
    box = arr.get_extents()
    assert all(s.stop == 2**31 - 1 for s in box)  # clipped to the shape
    assert arr[box[0].stop - 1, box[1].stop - 1, box[2].stop - 1] == 7


# -- defect 10: raw exceptions from misuse ---------------------------------------------------------


@pytest.mark.parametrize("kwargs, words", [
    ({"cache": 123}, "cache"),
    ({"cache_size": "big"}, "cache_size"),
    ({"cache_size": -1}, "cache_size"),
    ({"cache_size": True}, "cache_size"),
    ({"permissionfile": 5}, "permissionfile"),
    ({"storage_options": "endpoint"}, "storage_options"),
])
def test_store_arguments_are_checked(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    raises(InvalidInputError, words, lambda: DicedStore(str(tmp_path / "s"), **kwargs))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kwargs, words", [
    ({"shape": ("x", 4, 4)}, "integers"),
    ({"shape": 5}, "(5,)"),
    ({"shape": (2.5, 3, 3)}, "integers"),
    ({"shape": (True, 3, 3)}, "integers"),
    ({"shape": (2**70, 1, 1)}, "2**62"),
    ({"chunks": ("a", 4, 4)}, "integers"),
    ({"chunks": 5}, "(5,)"),
    ({"chunks": (0, 4, 4)}, "from 1"),
    ({"chunks": (4096, 4096, 4096)}, "smaller chunks"),
    ({"dtype": np.float128}, "not supported"),
    ({"dtype": None}, "needs a dtype"),
    ({"dtype": "no such dtype"}, "unknown dtype"),
    ({"dtype": object}, "not supported"),
    ({"dims": 0}, "dims"),
    ({"dims": True}, "dims"),
])
def test_create_array_arguments_are_checked(repo: DicedRepo, kwargs: dict[str, Any],
                                            words: str) -> None:
    before = state(repo)
    args = {"dtype": np.uint8, **kwargs}
    raises(InvalidInputError, words, lambda: repo.create_array("a", **args))
    assert state(repo) == before


def test_bad_indices_and_resizes_are_diced_errors(repo: DicedRepo) -> None:
    arr = repo.create_array("a", np.uint8, shape=(4, 4), chunks=(2, 2))
    before = state(repo)
    raises(InvalidIndexError, "step", lambda: arr[0:2:0])
    raises(InvalidIndexError, "step", lambda: arr.__setitem__(slice(0, 2, 0), 1))
    raises(InvalidInputError, "2**62", lambda: arr.resize(2**70, 1))
    raises(InvalidInputError, "integers", lambda: arr.resize(2.0, 1))  # type: ignore[arg-type]
    assert state(repo) == before


def test_zarr_writes_on_a_locked_node_are_refused(repo: DicedRepo) -> None:
    arr = repo.create_array("a", np.uint8, shape=(4,), chunks=(2,))
    repo.lock_node("locked")
    before = state(repo)
    error = raises(ReadOnlyStoreError, "create a branch",
                   lambda: repo.get_array("a").zarr.__setitem__(0, 1))
    assert isinstance(error, ValueError) and "read-only" in str(error)  # zarr's contract too
    with pytest.raises(LockedError, match="create_branch"):
        arr[0] = 1
    assert state(repo) == before


@pytest.mark.parametrize("name", ["a" * 200 + "..", "a" * 200 + ".", "." * 201, "..",
                                  "é" * 33 + "ab..", "x" * 399 + "."])
def test_names_whose_encoding_ends_in_dots_work(store: DicedStore, name: str) -> None:
    assert keys.encode_name(name).split("/")[-1] not in (".", "..")
    assert keys.decode_name(keys.encode_name(name)) == name
    repo = store.create_repo(name[:200])
    repo.upload_filedata(name, b"data")
    assert repo.download_filedata(name) == b"data"
    assert name in repo.list_files()
    repo.lock_node("named")
    child = repo.create_branch("b", name=name[:200])
    assert repo.node_record(child).branch == name[:200]
    assert store.open_repo(name[:200]).name == name[:200]


def test_a_refused_create_leaves_nothing(store: DicedStore) -> None:
    store.create_repo("taken")
    objects = sorted(i.key for i in store.backend.list_info(""))
    with pytest.raises(Exception, match="already exists"):
        store.create_repo("taken")
    repo = store.open_repo("taken")
    repo.lock_node("x")
    repo.create_branch("b", name="side")
    objects = sorted(i.key for i in store.backend.list_info(""))
    with pytest.raises(Exception, match="already exists"):
        repo.create_branch("b", name="side")
    raises(InvalidInputError, "branch name", lambda: repo.create_branch("b", name="a:b"))
    raises(InvalidInputError, "description",
           lambda: store.create_repo("x", 5))  # type: ignore[arg-type]
    assert sorted(i.key for i in store.backend.list_info("")) == objects


# -- defect 11: an unfinished lock says what it is -----------------------------------------


def test_an_unfinished_lock_is_described_and_finished_by_lock_node(repo: DicedRepo) -> None:
    arr = repo.create_array("a", np.uint8, shape=(4,), chunks=(2,))
    arr[...] = 3
    # What a process killed between sealing and locking leaves (tests/test_crash_safety.py
    # produces it with real kills): the record says "sealing".
    record_key = keys.node_record(repo.repo_uuid, repo.uuid)
    backend = repo._ctx.backend
    record = repo.node_record()
    backend.put(record_key, record.sealed().to_bytes())
    assert repo.state == "sealing" and not repo.locked
    assert "sealing" in repr(repo)
    for call in (lambda: arr.__setitem__(0, 1), lambda: repo.upload_filedata("f", b"x"),
                 lambda: repo.create_array("b", np.uint8, shape=(1,))):
        raises(LockedError, ("unfinished lock", "lock_node"), call)
    raises(LockedError, ("unfinished lock",), lambda: repo.create_branch("b"))
    repo.lock_node("finished")
    assert repo.state == "locked"
    assert np.array_equal(repo.get_array("a")[...], [3, 3, 3, 3])
