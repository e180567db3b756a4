"""The archived DICED store scenarios (test_DicedStore.py), the README session, store life.

Ported from the archived DICED tests: each DICED test started a DVID server on a temporary
directory; here a store is a real directory below ``tmp_path`` (or an in-process
``memory://`` store where a scenario is cheap). Where diced deliberately differs from DICED
(documented in the API), the test checks diced's behaviour and says what DICED did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diced import (
    AlreadyExistsError,
    ArrayDtype,
    DicedException,
    DicedRepo,
    DicedStore,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
)

UNBOUNDED = 2**31 - 1

_UNUSUAL_NAMES = ["a/b", ".", "..", "..a", "with space", "日本語", "é" * 100, "z" * 200]

_UNUSUAL_IDS = ["slash", "dot", "dotdot", "dotdot-a", "space", "cjk", "e-acute-x100", "z-x200"]


def test_repos(location: str) -> None:
    store = DicedStore(location)
    created = store.create_repo("myrepo")
    assert isinstance(created, DicedRepo)  # DICED returned None
    assert created.name == "myrepo"
    store.create_repo("myrepo1")
    with pytest.raises(AlreadyExistsError, match="myrepo1"):
        store.create_repo("myrepo1")

    reponames = store.list_repos()
    assert len(reponames) == 2
    assert [name for name, _ in reponames] == ["myrepo", "myrepo1"]  # sorted by name
    assert reponames[0][1] == created.get_current_version()  # the root uuid

    store.delete_repo("myrepo")
    reponames = store.list_repos()
    assert len(reponames) == 1
    assert reponames[0][0] == "myrepo1"
    assert "myrepo" not in [name for name, _ in reponames]
    assert store.get_repouuid("myrepo1") == reponames[0][1]

    reopened = store.open_repo("myrepo1")
    assert reopened.name == "myrepo1"
    assert reopened.get_current_version() == reponames[0][1]
    with pytest.raises(NotFoundError):
        store.open_repo("myrepo")
    store.close()


def test_deleted_repo_name_can_be_reused(location: str) -> None:
    store = DicedStore(location)
    old = store.create_repo("again")
    old.upload_filedata("f", b"old")
    store.delete_repo("again")
    new = store.create_repo("again")
    assert new.get_current_version() != old.get_current_version()
    assert new.list_files() == []
    store.close()


def test_readme_session(location: str) -> None:
    store = DicedStore(location)
    repo = store.create_repo("myrepo", "a test repo")
    assert repo.description == "a test repo"
    arr = repo.create_array("em", ArrayDtype.uint16)
    arr[0:1, 0:1, 0:5] = np.array([[[3, 2, 4, 1, 6]]], np.uint16)
    repo.lock_node("first version")
    parent = repo.get_current_version()
    child = repo.create_branch("new branch")
    repo.change_version(child)
    arr = repo.get_array("em")
    assert np.array_equal(arr[0:1, 0:1, 0:5], [[[3, 2, 4, 1, 6]]])
    arr[0:1, 0:1, 0:5] = np.array([[[4, 2, 4, 1, 6]]], np.uint16)
    assert arr[0, 0, 0] == 4

    repo.change_version(parent)
    assert repo.get_array("em")[0, 0, 0] == 3
    assert store.open_repo(uuid=parent).get_array("em")[0, 0, 0] == 3
    assert store.open_repo(uuid=child).get_array("em")[0, 0, 0] == 4
    assert np.array_equal(store.open_repo("myrepo").get_array("em")[0, 0, :5], [4, 2, 4, 1, 6])
    store.close()


def test_store_reopened_from_disk_sees_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "persist.diced")
    with DicedStore(path) as store:
        repo = store.create_repo("r", "described")
        em = repo.create_array("em", ArrayDtype.uint8, shape=(10, 20, 30), chunks=(4, 8, 16))
        em[2:5, 3:9, 10:20] = 17
        labels = repo.create_array("labels", ArrayDtype.uint64, islabel3D=True)
        labels[100, 200, 300] = 2**63 + 5
        repo.upload_filedata("notes/readme.txt", "hello")
        repo.lock_node("v1")
        root = repo.get_current_version()
        child = repo.create_branch("v2")
        repo.change_version(child)
        em = repo.get_array("em")
        em[0, 0, 0] = 1
        repo.upload_filedata("open.bin", b"\x00\x01")
        store.create_repo("other")

    with DicedStore(path) as again:
        assert [n for n, _ in again.list_repos()] == ["other", "r"]
        repo = again.open_repo("r")
        assert repo.get_current_version() == child
        assert repo.description == "described"
        assert repo.get_commit_log() == [(root, "v1"), (child, "(open node)")]
        assert repo.list_files() == ["notes/readme.txt", "open.bin"]
        assert repo.download_filedata("open.bin") == b"\x00\x01"
        em = repo.get_array("em")
        expected = np.zeros((10, 20, 30), np.uint8)
        expected[2:5, 3:9, 10:20] = 17
        expected[0, 0, 0] = 1
        assert em.shape == (10, 20, 30)
        assert em.chunks == (4, 8, 16)
        assert np.array_equal(em[:], expected)
        labels = repo.get_array("labels")
        assert labels.islabel3D is True
        assert labels[100, 200, 300] == 2**63 + 5
        repo.change_version(root)
        assert repo.locked is True
        assert repo.get_array("em")[0, 0, 0] == 0
        assert repo.list_files() == ["notes/readme.txt"]


def test_memory_store_shared_by_location(memory_location: str) -> None:
    first = DicedStore(memory_location)
    first.create_repo("mem").upload_filedata("x", b"y")
    second = DicedStore(memory_location)
    assert [n for n, _ in second.list_repos()] == ["mem"]
    assert second.open_repo("mem").download_filedata("x") == b"y"


def test_store_is_a_context_manager(tmp_path: Path) -> None:
    path = str(tmp_path / "ctx.diced")
    with DicedStore(path) as store:
        assert isinstance(store, DicedStore)
        store.create_repo("inside")
    assert (tmp_path / "ctx.diced" / "diced.json").is_file()
    with pytest.raises(RuntimeError, match="boom"), DicedStore(path) as store:
        store.create_repo("before error")
        raise RuntimeError("boom")
    with DicedStore(path) as store:
        assert [n for n, _ in store.list_repos()] == ["before error", "inside"]


def test_every_error_is_a_diced_exception() -> None:
    for cls in (AlreadyExistsError, InvalidIndexError, InvalidInputError, LockedError,
                NotFoundError):
        assert issubclass(cls, DicedException)


@pytest.mark.parametrize("name", _UNUSUAL_NAMES, ids=_UNUSUAL_IDS)
def test_unusual_repo_names(store: DicedStore, name: str) -> None:
    # Repo names may be any 1-200 printable characters.
    created = store.create_repo(name)
    store.create_repo("plain")
    assert store.list_repos() == sorted([(name, created.get_current_version()),
                                         ("plain", store.get_repouuid("plain"))])
    assert store.open_repo(name).get_current_version() == created.get_current_version()
    with pytest.raises(AlreadyExistsError):
        store.create_repo(name)
    store.delete_repo(name)
    assert [n for n, _ in store.list_repos()] == ["plain"]


def test_uuid_lookup_ignores_case(store: DicedStore, myrepo: DicedRepo) -> None:
    uuid_upper = myrepo.get_current_version().upper()
    assert store.open_repo(uuid=uuid_upper).get_current_version() == myrepo.uuid
    myrepo.change_version(uuid_upper[:10])
    assert myrepo.get_current_version() == uuid_upper.lower()
