"""The archived DICED repo scenarios (test_DicedRepo.py): versions, branches, files, arrays.

Ported from the archived DICED tests: each DICED test started a DVID server on a temporary
directory; here a store is a real directory below ``tmp_path`` (or an in-process
``memory://`` store where a scenario is cheap). Where diced deliberately differs from DICED
(documented in the API), the test checks diced's behaviour and says what DICED did.
"""

from __future__ import annotations

import numpy as np
import pytest

from diced import (
    AlreadyExistsError,
    ArrayDtype,
    DicedArray,
    DicedRepo,
    DicedStore,
    InvalidInputError,
    LockedError,
    NotFoundError,
)

UNBOUNDED = 2**31 - 1

_UNUSUAL_NAMES = ["a/b", ".", "..", "..a", "with space", "日本語", "é" * 100, "z" * 200]

_UNUSUAL_IDS = ["slash", "dot", "dotdot", "dotdot-a", "space", "cjk", "e-acute-x100", "z-x200"]


def test_repoversion(store: DicedStore, myrepo: DicedRepo) -> None:
    root = myrepo.get_current_version()
    assert root == store.list_repos()[0][1]
    assert len(root) == 32
    assert myrepo.locked is False

    with pytest.raises(InvalidInputError, match="lock"):
        myrepo.create_branch("start")

    myrepo.lock_node("now done")
    assert myrepo.locked is True

    uuidnew = myrepo.create_branch("start")
    assert uuidnew != root
    assert myrepo.get_current_version() == root  # create_branch does not switch

    myrepov2 = store.open_repo(uuid=uuidnew)
    assert myrepov2.get_current_version() == uuidnew
    logs = myrepov2.get_commit_log()
    assert logs == [(root, "now done"), (uuidnew, "(open node)")]

    myrepo.change_version(uuidnew)
    assert myrepo.locked is False
    assert myrepo.uuid == uuidnew


def test_commit_log_is_fresh_after_lock(myrepo: DicedRepo) -> None:
    # DICED's log kept saying "(open node)" for a node locked through the same handle.
    root = myrepo.get_current_version()
    assert myrepo.get_commit_log() == [(root, "(open node)")]
    myrepo.lock_node("first")
    assert myrepo.get_commit_log() == [(root, "first")]
    child = myrepo.create_branch("next")
    myrepo.change_version(child)
    myrepo.lock_node("second")
    grandchild = myrepo.create_branch("third")
    myrepo.change_version(grandchild)
    assert myrepo.get_commit_log() == [(root, "first"), (child, "second"),
                                       (grandchild, "(open node)")]


def test_open_repo_by_name_opens_newest_master_node(store: DicedStore,
                                                    myrepo: DicedRepo) -> None:
    # DICED opened the root; diced opens the leaf of master.
    root = myrepo.get_current_version()
    myrepo.lock_node("v1")
    child = myrepo.create_branch("v2")
    side = myrepo.create_branch("side branch", name="side")
    assert store.open_repo("myrepo").get_current_version() == child
    myrepo.change_version(child)
    myrepo.lock_node("v2 done")
    grandchild = myrepo.create_branch("v3")
    assert store.open_repo("myrepo").get_current_version() == grandchild
    # A uuid still opens exactly that node, root included; a unique prefix works too.
    assert store.open_repo(uuid=root).get_current_version() == root
    assert store.open_repo(uuid=side).get_current_version() == side
    assert store.open_repo("myrepo", uuid=child).get_current_version() == child
    myrepo.change_version(root)
    assert myrepo.locked is True


def test_change_version_by_branch_name(myrepo: DicedRepo) -> None:
    myrepo.lock_node("base")
    side = myrepo.create_branch("side", name="side")
    myrepo.change_version(":side")
    assert myrepo.get_current_version() == side
    myrepo.change_version(side[:12])
    assert myrepo.get_current_version() == side


def test_files_scenario(myrepo: DicedRepo) -> None:
    myrepo.upload_filedata("hello.txt", "world text")
    assert myrepo.download_filedata("hello.txt") == b"world text"
    myrepo.upload_filedata("hello.txt", "world text2")
    assert myrepo.download_filedata("hello.txt") == b"world text2"

    myrepo.upload_filedata("world.txt", "foobar")
    assert myrepo.list_files() == ["hello.txt", "world.txt"]

    with pytest.raises(NotFoundError, match=r"hello2\.txt"):
        myrepo.download_filedata("hello2.txt")

    rootuuid = myrepo.get_current_version()
    myrepo.lock_node("lock")
    with pytest.raises(LockedError):
        myrepo.upload_filedata("world.txt", "foobar")

    newuuid = myrepo.create_branch("new branch")
    myrepo.change_version(newuuid)
    myrepo.upload_filedata("world.txt", "newdata")
    assert myrepo.download_filedata("world.txt") == b"newdata"
    myrepo.delete_file("hello.txt")
    assert myrepo.list_files() == ["world.txt"]

    myrepo.change_version(rootuuid)
    assert myrepo.download_filedata("world.txt") == b"foobar"
    assert myrepo.list_files() == ["hello.txt", "world.txt"]
    assert myrepo.download_filedata("hello.txt") == b"world text2"


def _check_array(arr: DicedArray, numdims: int, islabel3d: bool, locked: bool) -> None:
    assert arr.numdims == numdims
    assert arr.get_numdims() == numdims
    assert arr.islabel3D is islabel3d
    assert arr.locked is locked


def test_array_scenario(myrepo: DicedRepo) -> None:
    _check_array(myrepo.create_array("myarray", ArrayDtype.uint8), 3, False, False)
    _check_array(myrepo.get_array("myarray"), 3, False, False)
    _check_array(myrepo.create_array("myarray2d", ArrayDtype.uint8, dims=2), 2, False, False)
    _check_array(myrepo.get_array("myarray2d"), 2, False, False)
    _check_array(myrepo.create_array("mylabelarray", ArrayDtype.uint64, islabel3D=True),
                 3, True, False)
    assert myrepo.get_array("myarray2d").numdims == 2

    assert myrepo.list_instances() == [("myarray", ArrayDtype.uint8),
                                       ("myarray2d", ArrayDtype.uint8),
                                       ("mylabelarray", ArrayDtype.uint64)]

    myrepo.delete_array("myarray2d")
    assert [n for n, _ in myrepo.list_instances()] == ["myarray", "mylabelarray"]

    # The name can be reused, and nothing of the deleted 2-D array leaks into the new one.
    recreated = myrepo.create_array("myarray2d", ArrayDtype.uint8, dims=3, lossycompression=True)
    _check_array(recreated, 3, False, False)
    assert len(myrepo.list_instances()) == 3

    with pytest.raises(AlreadyExistsError, match="myarray"):
        myrepo.create_array("myarray", ArrayDtype.uint8)
    with pytest.raises(InvalidInputError, match="uint64"):
        myrepo.create_array("myarray", ArrayDtype.uint16, islabel3D=True)
    with pytest.raises(NotFoundError, match="myarray3"):
        myrepo.get_array("myarray3")

    myrepo.lock_node("blah")
    with pytest.raises(LockedError):
        myrepo.create_array("myarray4", ArrayDtype.uint16)
    assert [n for n, _ in myrepo.list_instances()] == ["myarray", "myarray2d", "mylabelarray"]
    _check_array(myrepo.get_array("myarray2d"), 3, False, True)


def test_delete_array_hides_only_here_and_below(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("kept", ArrayDtype.uint8, shape=(4, 4))
    arr[:] = 7
    myrepo.lock_node("has kept")
    root = myrepo.get_current_version()
    child = myrepo.create_branch("drop it")
    myrepo.change_version(child)
    myrepo.delete_array("kept")
    assert myrepo.list_instances() == []
    with pytest.raises(NotFoundError):
        myrepo.get_array("kept")
    myrepo.lock_node("dropped")
    grandchild = myrepo.create_branch("later")
    myrepo.change_version(grandchild)
    assert myrepo.list_instances() == []
    myrepo.change_version(root)
    assert myrepo.list_instances() == [("kept", ArrayDtype.uint8)]
    assert np.array_equal(myrepo.get_array("kept")[:], np.full((4, 4), 7, np.uint8))


@pytest.mark.parametrize("name", _UNUSUAL_NAMES, ids=_UNUSUAL_IDS)
def test_unusual_branch_names(myrepo: DicedRepo, name: str) -> None:
    # Branch names may be any 1-200 printable characters without ':'.
    myrepo.lock_node("base")
    root = myrepo.get_current_version()
    child = myrepo.create_branch("named", name=name)
    assert myrepo.node_record(child).branch == name
    with pytest.raises(AlreadyExistsError):
        myrepo.create_branch("again", name=name)
    myrepo.change_version(f":{name}")
    assert myrepo.get_current_version() == child
    assert myrepo.get_commit_log() == [(root, "base"), (child, "(open node)")]
