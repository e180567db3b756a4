"""Tags, merges of arrays and files, the full log, chunk blame and time travel, on local disk.

Merges are checked case by case against the rules in docs/versioning.md: what one side
changed is taken, arrays created on several sides merge when their metadata agree,
incompatible array and file changes are conflicts that ``ours`` / ``theirs`` resolve,
metadata changes and chunk edits combine, and a merge node is an ordinary open node that
locks, branches and reads like any other (sharded arrays included).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from diced import (
    AlreadyExistsError,
    DicedRepo,
    DicedStore,
    InvalidInputError,
    MergeConflictError,
    NotFoundError,
)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with DicedStore(str(tmp_path / "store")) as opened:
        yield opened


@pytest.fixture
def repo(store: DicedStore) -> DicedRepo:
    made = store.create_repo("r")
    made.create_array("a", np.uint16, shape=(32, 32), chunks=(8, 8))[...] = 1
    made.upload_filedata("notes.txt", b"base")
    made.lock_node("base")
    return made


def _branches(repo: DicedRepo, *names: str) -> list[str]:
    """Open named branches of the current (locked) version."""
    return [repo.create_branch(name, name) for name in names]


def _locked(repo: DicedRepo, version: str, edit: Any) -> str:
    repo.change_version(version)
    edit(repo)
    repo.lock_node("edited")
    return repo.uuid


# -- tags ------------------------------------------------------------------------------------


def test_tags_name_locked_versions_everywhere(store: DicedStore, repo: DicedRepo,
                                              tmp_path: Path) -> None:
    base = repo.uuid
    tag = repo.create_tag("v1.0", message="first release")
    assert (tag.name, tag.uuid, tag.message) == ("v1.0", base, "first release")
    child = repo.create_branch("next")
    repo.change_version(child)
    repo.get_array("a")[0, 0] = 9
    repo.lock_node("second")
    repo.create_tag("v2", version=repo.uuid)
    assert [t.name for t in repo.list_tags()] == ["v1.0", "v2"]
    repo.change_version("tag:v1.0")
    assert repo.uuid == base and repo.get_array("a")[0, 0] == 1
    assert store.open_repo("r", version="tag:v2").get_array("a")[0, 0] == 9
    assert store.open_repo(uuid="tag:v1.0").uuid == base
    with pytest.raises(AlreadyExistsError, match="never move"):
        repo.create_tag("v1.0", version=child)
    repo.delete_tag("v1.0")
    with pytest.raises(NotFoundError):
        repo.change_version("tag:v1.0")
    assert repo.uuid == base, "a failed change_version keeps the current version"
    repo.create_tag("v1.0", version=child)  # a deleted name is free again
    assert store.open_repo("r", version="tag:v1.0").uuid == child


def test_tag_names_and_states(repo: DicedRepo) -> None:
    open_child = repo.create_branch("open")
    with pytest.raises(InvalidInputError, match="lock it"):
        repo.create_tag("t", version=open_child)
    for bad in ("", "a b", "-x", "x/y", "tag:x", "x" * 201, 5):
        with pytest.raises(InvalidInputError):
            repo.create_tag(bad)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        repo.delete_tag("never")
    assert repo.list_tags() == []


# -- merges of arrays and files -----------------------------------------------------------


def test_one_sided_changes_of_arrays_and_files_are_taken(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: (
        r.create_array("new", np.float32, shape=(5, 5), chunks=(2, 2)).__setitem__(
            (slice(1, 3), slice(0, 5)), 2.5),
        r.upload_filedata("left.txt", b"L"),
        r.delete_file("notes.txt")))
    right = _locked(repo, right, lambda r: (
        r.get_array("a").__setitem__((slice(20, 30), slice(0, 32)), 7),
        r.upload_filedata("right.txt", b"R")))
    merged = repo.merge([left, right], "both", name="merged")
    repo.change_version(merged)
    assert repo.node_record().parents == (left, right)
    assert sorted(repo.list_files()) == ["left.txt", "right.txt"]
    expected = np.ones((32, 32), np.uint16)
    expected[20:30] = 7
    assert np.array_equal(repo.get_array("a")[...], expected)
    new = np.zeros((5, 5), np.float32)
    new[1:3] = 2.5
    assert np.array_equal(repo.get_array("new")[...], new)
    repo.lock_node("merge locked")
    assert np.array_equal(repo.get_array("new")[...], new)
    repo.change_version(repo.create_branch("after"))
    repo.get_array("new")[0, 0] = 1
    assert repo.get_array("a")[25, 3] == 7


def test_arrays_created_on_both_sides(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: r.create_array(
        "seg", np.uint8, shape=(8, 8), chunks=(4, 4)).__setitem__((0, 0), 1))
    right = _locked(repo, right, lambda r: r.create_array(
        "seg", np.uint8, shape=(8, 8), chunks=(4, 4)).__setitem__((7, 7), 2))
    merged = repo.merge([left, right], "same metadata: merged", name="same")
    repo.change_version(merged)
    seg = repo.get_array("seg")[...]
    assert seg[0, 0] == 1 and seg[7, 7] == 2 and seg.sum() == 3
    repo.change_version(right)
    other = _locked(repo, repo.create_branch("wider", "wider"), lambda r: (
        r.delete_array("seg"),
        r.create_array("seg", np.uint8, shape=(9, 8), chunks=(4, 4))))
    with pytest.raises(MergeConflictError, match="different metadata") as failure:
        repo.merge([left, other], "differs")
    assert [(c.kind, c.name) for c in failure.value.conflicts] == [("array", "seg")]
    repo.change_version(repo.merge([left, other], "ours", name="ours", on_conflict="ours"))
    assert repo.get_array("seg").shape == (8, 8)
    repo.change_version(repo.merge([left, other], "theirs", name="theirs",
                                   on_conflict="theirs"))
    assert repo.get_array("seg").shape == (9, 8)


def test_deleted_on_one_side_and_changed_on_the_other(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: (r.delete_array("a"),
                                          r.upload_filedata("notes.txt", b"left")))
    right = _locked(repo, right, lambda r: (r.get_array("a").__setitem__((0, 0), 5),
                                            r.delete_file("notes.txt")))
    with pytest.raises(MergeConflictError) as failure:
        repo.merge([left, right], "x")
    kinds = sorted((c.kind, c.name) for c in failure.value.conflicts)
    assert kinds == [("array", "a"), ("file", "notes.txt")]
    assert "deleted on one of" in str(failure.value)
    repo.change_version(repo.merge([left, right], "ours", name="o", on_conflict="ours"))
    assert repo.list_instances() == [] and repo.download_filedata("notes.txt") == b"left"
    repo.change_version(repo.merge([left, right], "theirs", name="t", on_conflict="theirs"))
    assert repo.get_array("a")[0, 0] == 5 and repo.list_files() == []

    def never(*args: Any) -> Any:
        raise AssertionError("array and file conflicts are not the function's")

    with pytest.raises(MergeConflictError, match="'ours' or 'theirs'"):
        repo.merge([left, right], "function", on_conflict=never)


def test_metadata_change_and_chunk_edits_combine(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: r.get_array("a").resize((16, 40)))
    right = _locked(repo, right, lambda r: (r.get_array("a").__setitem__((2, 2), 3),
                                            r.get_array("a").__setitem__((30, 30), 4)))
    repo.change_version(repo.merge([right, left], "resized and edited", name="m"))
    array = repo.get_array("a")
    assert array.shape == (16, 40)
    assert array[2, 2] == 3 and array[15, 31] == 1 and array[0, 35] == 0
    assert (3, 3) not in array.chunk_digests(), "a chunk outside the merged shape is dropped"
    repo.lock_node("merged")
    resized_again = _locked(repo, repo.create_branch("grow", "grow"),
                            lambda r: r.get_array("a").resize((32, 40)))
    repo.change_version(resized_again)
    assert repo.get_array("a")[30, 30] == 0


def test_metadata_changed_differently_is_a_conflict(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: r.get_array("a").resize((16, 16)))
    right = _locked(repo, right, lambda r: r.get_array("a").resize((24, 24)))
    with pytest.raises(MergeConflictError, match="metadata changed differently"):
        repo.merge([left, right], "x")
    repo.change_version(repo.merge([left, right], "t", name="t", on_conflict="theirs"))
    assert repo.get_array("a").shape == (24, 24)


def test_three_way_merge_of_three_branches_and_priority(repo: DicedRepo) -> None:
    one, two, three = _branches(repo, "one", "two", "three")
    one = _locked(repo, one, lambda r: r.get_array("a").__setitem__((0, 0), 11))
    two = _locked(repo, two, lambda r: r.get_array("a").__setitem__((0, 0), 22))
    three = _locked(repo, three, lambda r: r.get_array("a").__setitem__((0, 1), 33))
    with pytest.raises(MergeConflictError):
        repo.merge([one, two, three], "x")
    for policy, value in (("ours", 11), ("theirs", 22)):
        repo.change_version(repo.merge([one, two, three], policy, name=policy,
                                       on_conflict=policy))
        assert repo.get_array("a")[0, 0] == value and repo.get_array("a")[0, 1] == 33
        assert len(repo.node_record().parents) == 3


def test_merge_of_a_sharded_array_goes_through_zarr(repo: DicedRepo) -> None:
    repo.change_version(repo.create_branch("sharded", "sharded"))
    group = zarr.open_group(repo.zarr_store(), mode="r+")
    group.create_array("s", shape=(16, 16), chunks=(4, 4), shards=(8, 8), dtype="int32",
                       fill_value=0)[...] = 1
    repo.lock_node("sharded array")
    left, right = _branches(repo, "sl", "sr")
    left = _locked(repo, left, lambda r: zarr.open_array(
        r.zarr_store(), path="s").__setitem__((0, 0), 5))
    right = _locked(repo, right, lambda r: zarr.open_array(
        r.zarr_store(), path="s").__setitem__((1, 1), 6))
    repo.change_version(repo.merge([left, right], "same shard", name="sm"))
    merged = zarr.open_array(repo.zarr_store(), path="s", mode="r")[...]
    expected = np.ones((16, 16), np.int32)
    expected[0, 0], expected[1, 1] = 5, 6
    assert np.array_equal(merged, expected)
    assert repo.merge_conflicts([left, right]) == []


def test_merge_node_branch_rules(repo: DicedRepo) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: None)
    right = _locked(repo, right, lambda r: None)
    merged = repo.merge([left, right], "continues left")
    assert repo.node_record(merged).branch == "left"
    assert repo.uuid == right, "merging does not move the current version"
    with pytest.raises(AlreadyExistsError, match="merge"):
        repo.merge([left, right], "left already continues")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        repo.merge([left, right], "x", name="right")
    nodes = {n.uuid: n for n in repo.list_nodes()}
    assert nodes[merged].parents == (left, right) and nodes[merged].is_branch_leaf
    assert merged in nodes[left].children and merged in nodes[right].children
    assert not nodes[left].is_branch_leaf and nodes[right].is_branch_leaf
    repo.change_version(":left")
    assert repo.uuid == merged


# -- history ---------------------------------------------------------------------------------


def test_log_blame_and_time_travel(repo: DicedRepo) -> None:
    base = repo.uuid
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: r.get_array("a").__setitem__((0, 0), 2))
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    right = _locked(repo, right, lambda r: r.get_array("a").__setitem__((9, 9), 3))
    repo.change_version(repo.merge([left, right], "merge", name="merged"))
    merged = repo.uuid
    log = repo.log()
    assert [r.uuid for r in log] == [merged, right, left, base]
    assert [r.uuid for r in repo.log(all_parents=False)] == [merged, left, base]
    assert [r.uuid for r in repo.log(right)] == [right, base]
    blame = repo.history("a", (0, 1))
    assert [c.uuid for c in blame] == [left, base]
    assert blame[0].digest != blame[1].digest and blame[1].message == "base"
    assert [c.uuid for c in repo.get_array("a").chunk_history((1, 1))] == [right, base]
    repo.get_array("a")[0, 0] = 4  # the open merge node changes the chunk itself
    assert [c.uuid for c in repo.history("a", (0, 0))] == [merged, left, base]
    assert repo.history("a", (0, 0))[0].message == "(open node)"
    assert repo.version_at(between, "left") == left
    with pytest.raises(NotFoundError):  # the branch's first version was locked later
        repo.version_at(between.isoformat(), "right")
    assert repo.version_at(between.isoformat()) == base
    assert repo.version_at("2999-01-01", "right") == right
    with pytest.raises(NotFoundError, match="locked at or before"):
        repo.version_at("2000-01-01")
    with pytest.raises(InvalidInputError, match="ISO-8601"):
        repo.version_at("yesterday")


def test_a_merge_node_is_stored_like_any_open_node(store: DicedStore, repo: DicedRepo,
                                                   tmp_path: Path) -> None:
    left, right = _branches(repo, "left", "right")
    left = _locked(repo, left, lambda r: r.get_array("a").__setitem__((0, 0), 2))
    right = _locked(repo, right, lambda r: r.get_array("a").__setitem__((1, 1), 3))
    merged = repo.merge([left, right], "merge", name="m")
    record = json.loads((tmp_path / "store" / "repos" / repo.repo_uuid / "nodes" /
                         f"{merged}.json").read_bytes())
    assert record["parents"] == [left, right] and record["state"] == "open"
    with DicedStore(str(tmp_path / "store")) as again:
        fresh = again.open_repo("r", version=":m")
        assert fresh.get_array("a")[0, 0] == 2 and fresh.get_array("a")[1, 1] == 3
