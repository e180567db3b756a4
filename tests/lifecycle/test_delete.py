"""Deleting a branch or an open version: what goes, what stays and why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diced import DicedRepo, DicedStore, InvalidInputError, LockedError, NotFoundError
from diced.versioning import keys


@pytest.fixture
def location(tmp_path: Path) -> str:
    return str(tmp_path / "s")


@pytest.fixture
def repo(location: str) -> DicedRepo:
    """master: root (locked) → m1 (open); branch exp from root: e1 → e2 (locked) → e3 (open)."""
    store = DicedStore(location)
    repo = store.create_repo("r")
    repo.create_array("a", np.uint8, shape=(32,), chunks=(8,))[...] = 1
    repo.lock_node("root")
    root = repo.uuid
    repo.create_branch("m1")
    repo.change_version(repo.create_branch("e1", "exp"))
    for i in (1, 2):
        repo.get_array("a")[...] = 10 + i
        repo.lock_node(f"e{i}")
        repo.change_version(repo.create_branch(f"e{i + 1}"))
    repo.get_array("a")[...] = 13
    repo.change_version(root)
    return repo


def branch(repo: DicedRepo, name: str) -> list[str]:
    return [n.uuid for n in repo.list_nodes() if n.branch == name]


def test_a_branch_nothing_depends_on_goes_entirely(repo: DicedRepo, location: str) -> None:
    exp = branch(repo, "exp")
    leaf = repo.node_record(":exp").uuid
    handle = DicedStore(location).open_repo(uuid=leaf).get_array("a")
    result = repo.delete_branch("exp")
    assert result.deleted == tuple(reversed(exp)) and result.kept == ()
    assert branch(repo, "exp") == []
    with pytest.raises(NotFoundError):
        repo.change_version(":exp")
    with pytest.raises(LockedError):  # writes in flight at the open leaf stop
        handle[0:8] = 99
    again = repo.create_branch("again", "exp")  # the name is free again
    assert branch(repo, "exp") == [again]
    assert repo.storage_report().unreferenced.objects > 0  # until gc
    assert repo.get_array("a")[...].tolist() == [1] * 32


def test_nodes_others_depend_on_are_kept_with_the_reason(repo: DicedRepo) -> None:
    e1, e2, e3 = branch(repo, "exp")
    repo.change_version(e2)
    sub = repo.create_branch("sub", "sub")
    result = repo.delete_branch("exp")
    assert result.deleted == (e3,)
    assert result.kept == ((e2, f"version {sub} (branch 'sub') is its child"),
                           (e1, f"an older version of the branch than {e2}"))
    assert branch(repo, "exp") == [e1, e2]
    assert repo.node_record(":exp").uuid == e2  # the hint moved to the new leaf
    with pytest.raises(InvalidInputError, match=f"{e2} is kept because version {sub}"):
        repo.delete_branch("exp")


def test_tags_and_the_root_keep_their_versions(repo: DicedRepo, location: str) -> None:
    e1, _, _ = branch(repo, "exp")
    store = DicedStore(location)
    # Tags (repos/R/tags/<name>) hold JSON naming their version; written as tags do.
    store.backend.put(keys.tags_prefix(repo.repo_uuid) + "v1.0",
                      json.dumps({"uuid": e1, "name": "v1.0"}).encode())
    result = repo.delete_branch("exp")
    assert result.kept == ((e1, "tag 'v1.0' names it"),)
    master = repo.delete_branch("master")
    root = branch(repo, "master")[0]
    assert master.kept == ((root, "it is the repo's root (delete the repo instead); "
                                  f"version {e1} (branch 'exp') is its child"),)
    assert branch(repo, "master") == [root]


def test_delete_an_open_leaf_version(repo: DicedRepo, location: str) -> None:
    root = repo.uuid
    m1 = repo.node_record(":master").uuid
    assert m1 != root
    repo.delete_version(m1)
    assert repo.node_record(":master").uuid == root
    assert DicedStore(location).open_repo("r").uuid == root
    with pytest.raises(InvalidInputError, match="locked"):
        repo.delete_version(root)
    with pytest.raises(NotFoundError):
        repo.delete_version(m1)
    repo.change_version(root)
    assert repo.create_branch("m1 again") != m1  # master continues from the root again


def test_delete_then_gc_frees_the_versions_data(repo: DicedRepo, location: str) -> None:
    store = DicedStore(location)
    store.gc(0, progress=False)
    before = store.storage_report().total
    exp = branch(repo, "exp")
    repo.delete_branch("exp")  # deletes the branch's claims and hint itself
    report = store.gc(0, progress=False)
    after = store.storage_report()
    assert report.reclaimed.bytes > 0 and after.unreferenced.objects == 0
    assert after.total.bytes < before.bytes - report.reclaimed.bytes
    for uuid in exp:
        assert not list(store.backend.list_prefix(keys.node_record(repo.repo_uuid, uuid)))
        assert not list(store.backend.list_prefix(keys.open_node_prefix(repo.repo_uuid, uuid)))
    assert store.open_repo("r").get_array("a")[...].tolist() == [1] * 32
