"""The archived DICED test scenarios, ported to diced's API, plus the README session.

Each DICED test started a DVID server on a temporary directory; here a store is a real
directory below ``tmp_path`` (or an in-process ``memory://`` store where a scenario is
cheap). Where diced deliberately differs from DICED (documented in the API), the test
checks diced's behaviour and says what DICED did.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from fsspec.implementations.memory import MemoryFileSystem

from diced import (
    AlreadyExistsError,
    ArrayDtype,
    DicedArray,
    DicedException,
    DicedRepo,
    DicedStore,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
)

UNBOUNDED = 2**31 - 1


@pytest.fixture
def memory_location() -> Iterator[str]:
    """A fresh ``memory://`` location, removed afterwards (the memory fs is process-wide)."""
    name = f"diced-scenarios-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = MemoryFileSystem()
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture(params=["local", "memory"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store location on the real filesystem or in memory."""
    if request.param == "local":
        return str(tmp_path / "store.diced")
    return request.getfixturevalue("memory_location")


@pytest.fixture
def myrepo(store: DicedStore) -> DicedRepo:
    """DICED's common setup: create "myrepo" and open it."""
    store.create_repo("myrepo")
    return store.open_repo("myrepo")


# -- test_DicedStore.py ----------------------------------------------------------------------


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


# -- test_DicedRepo.py -----------------------------------------------------------------------


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


# -- test_DicedArray.py ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "dtype"), [("myarray16", ArrayDtype.uint16),
                                             ("myarray32", ArrayDtype.uint32),
                                             ("myarray64", ArrayDtype.uint64)])
def test_newdvidinstances(myrepo: DicedRepo, name: str, dtype: ArrayDtype) -> None:
    arr = myrepo.create_array(name, dtype)
    assert arr.get_numdims() == 3
    assert arr.dtype == np.dtype(dtype.value)
    assert arr.get_extents() == (slice(0, 0), slice(0, 0), slice(0, 0))
    data = np.full((400, 200, 100), 5, dtype.value)
    arr[1:401, 2:202, 3:103] = data
    back = arr[1:401, 2:202, 3:103]
    assert back.dtype == np.dtype(dtype.value)
    assert np.array_equal(back, data)
    assert arr[0, 2, 3] == 0
    assert arr[1, 2, 3] == 5


def test_arraysmall(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("myarray", ArrayDtype.uint64, islabel3D=True)
    assert arr.get_numdims() == 3
    assert arr.get_extents() == (slice(0, 0),) * 3

    data = np.full((400, 200, 100), 5, np.uint64)
    arr[1:401, 2:202, 3:103] = data
    assert np.array_equal(arr[1:401, 2:202, 3:103], data)
    assert arr.get_extents() == (slice(0, 448), slice(0, 256), slice(0, 128))

    # DICED treated negative indices as absolute coordinates. diced's unbounded axes span
    # 0..2**31-2 and refuse negative positions (numpy would count them from the far end),
    # saying how to select instead; nothing is written.
    for selection in [(-3, -1, 4), (slice(-3, -2), slice(-1, None), slice(4, 5))]:
        with pytest.raises(InvalidIndexError, match="unbounded"):
            arr[selection] = 121
        with pytest.raises(InvalidIndexError, match="negative"):
            arr[selection]
    assert arr.get_extents() == (slice(0, 448), slice(0, 256), slice(0, 128))
    # numpy (2.x) refuses a (1, 1, 1) array for a single element, so DICED's
    # ``arr[3, 1, 4] = np.array([[[121]]])`` becomes a scalar or a 1x1x1 region.
    arr[UNBOUNDED - 3, UNBOUNDED - 1, 4] = 121
    assert arr[UNBOUNDED - 3, UNBOUNDED - 1, 4] == 121
    assert arr.get_extents() == (slice(0, UNBOUNDED), slice(0, UNBOUNDED),  # clipped
                                 slice(0, 128))

    arr[UNBOUNDED - 3, UNBOUNDED - 1, 3:5] = np.array([[[121, 122]]], np.uint64)
    got = arr[UNBOUNDED - 3, UNBOUNDED - 1, 3:5]
    assert got.dtype == np.uint64
    assert np.array_equal(got, np.array([121, 122], np.uint64))
    assert arr[UNBOUNDED - 3, UNBOUNDED - 1, 5] == 0

    with pytest.raises(InvalidIndexError):
        arr[0, 5, 1, 2]


def test_negative_indices_follow_numpy_on_bounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("small", ArrayDtype.uint16, shape=(5, 6, 7), chunks=(2, 4, 3))
    oracle = np.zeros((5, 6, 7), np.uint16)
    for sel, value in [((-1, -2, -3), 9), ((slice(-3, -1), -1, slice(None, -4)), 4),
                       ((-5, slice(-6, None), 0), 11)]:
        arr[sel] = value
        oracle[sel] = value
    assert np.array_equal(arr[:], oracle)
    assert arr[-1, -2, -3] == oracle[4, 4, 4] == 9
    assert np.array_equal(arr[-2:, -3:-1, -7], oracle[-2:, -3:-1, -7])


def test_array1d2d(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("myarray2d", ArrayDtype.uint8, dims=2)
    assert arr.get_numdims() == 2
    assert arr.get_extents() == (slice(0, 0), slice(0, 0))
    data = np.full((200, 100), 5, np.uint8)
    arr[2:202, 3:103] = data
    assert np.array_equal(arr[2:202, 3:103], data)
    assert arr.get_extents() == (slice(0, 512), slice(0, 512))
    with pytest.raises(InvalidIndexError):
        arr[0, 0, 0]

    arr1 = myrepo.create_array("myarray1d", ArrayDtype.uint8, dims=1)
    assert arr1.get_numdims() == 1
    assert arr1.get_extents() == (slice(0, 0),)  # DICED returned a bare slice
    data1 = np.full((100,), 5, np.uint8)
    arr1[3:103] = data1
    back = arr1[3:103]
    assert back.shape == (100,)
    assert np.array_equal(back, data1)
    assert arr1.get_extents() == (slice(0, 262144),)
    assert arr1[3] == 5  # DICED's 1-D scalar read raised TypeError
    assert arr1[2] == 0
    with pytest.raises(InvalidIndexError):
        arr1[0:3, 0:3]


def test_arraylarge(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "large.diced")) as store:
        arr = store.create_repo("myrepo").create_array("myarray", ArrayDtype.uint8)
        data = np.full((1400, 1200, 1000), 3, np.uint8)
        arr[1:1401, 2:1202, 3:1003] = data
        assert np.array_equal(arr[1:1401, 2:1202, 3:1003], data)
        del data
        assert arr[1401, 1202, 1003] == 0
        assert arr[1, 2, 3] == 3
        assert arr[0, 2, 3] == 0
        assert arr.get_extents() == (slice(0, 1408), slice(0, 1216), slice(0, 1024))


# -- README session and store life cycle -----------------------------------------------------


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


# -- array features beyond DICED -------------------------------------------------------------


def test_islabel3d_round_trips(myrepo: DicedRepo, store: DicedStore) -> None:
    myrepo.create_array("labels", ArrayDtype.uint64, islabel3D=True)
    myrepo.create_array("plain64", ArrayDtype.uint64)
    myrepo.lock_node("labels")
    reopened = store.open_repo(uuid=myrepo.get_current_version())
    assert reopened.get_array("labels").islabel3D is True
    assert reopened.get_array("plain64").islabel3D is False


def test_lossy_uint8_array_is_approximately_equal(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("jpeg", ArrayDtype.uint8, lossycompression=True)
    z, y, x = np.meshgrid(np.arange(64), np.arange(128), np.arange(128), indexing="ij")
    data = (64 + 40 * np.sin(x / 9.0) + 30 * np.cos(y / 13.0) + z).astype(np.uint8)
    arr[0:64, 0:128, 0:128] = data
    back = arr[0:64, 0:128, 0:128]
    assert back.shape == data.shape
    assert back.dtype == np.uint8
    error = np.abs(back.astype(np.int16) - data.astype(np.int16))
    assert error.mean() < 2.0
    assert error.max() < 32
    assert np.array_equal(arr[64:65, 0:4, 0:4], np.zeros((1, 4, 4), np.uint8))


def test_unbounded_sparse_writes_far_away(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("sparse", ArrayDtype.uint32)
    assert arr.shape == (UNBOUNDED,) * 3
    far = 10**6
    block = np.arange(8, dtype=np.uint32).reshape(2, 2, 2)
    arr[far:far + 2, far:far + 2, far:far + 2] = block
    assert np.array_equal(arr[far:far + 2, far:far + 2, far:far + 2], block)
    assert arr[far, far, far] == 0
    assert arr[far + 1, far + 1, far + 1] == 7
    assert arr[0, 0, 0] == 0
    lo = far // 64 * 64
    assert arr.get_extents() == (slice(lo, lo + 64),) * 3
    arr[0, 0, 0] = 1
    assert arr.get_extents() == (slice(0, lo + 64),) * 3
    # Only the two chunks that were written are stored.
    node_store = myrepo.zarr_store()

    async def chunk_keys() -> list[str]:
        return [k async for k in node_store.list_prefix("sparse/c/")]

    c = far // 64
    assert sorted(asyncio.run(chunk_keys())) == ["sparse/c/0/0/0", f"sparse/c/{c}/{c}/{c}"]


def test_unbounded_array_refuses_whole_read(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("huge", ArrayDtype.uint8, dims=2)
    with pytest.raises(InvalidInputError, match="unbounded"):
        np.asarray(arr)


def test_extents_follow_version_history(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("e", ArrayDtype.uint8, dims=2, chunks=(10, 10))
    arr[5, 5] = 1
    assert arr.get_extents() == (slice(0, 10), slice(0, 10))
    myrepo.lock_node("one chunk")
    root = myrepo.get_current_version()
    assert myrepo.get_array("e").get_extents() == (slice(0, 10), slice(0, 10))
    myrepo.change_version(myrepo.create_branch("grow"))
    arr = myrepo.get_array("e")
    arr[35, 21] = 2
    assert arr.get_extents() == (slice(0, 40), slice(0, 30))
    myrepo.change_version(root)
    assert myrepo.get_array("e").get_extents() == (slice(0, 10), slice(0, 10))


def test_resize_bounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("r", ArrayDtype.uint16, shape=(10, 10), chunks=(4, 4))
    arr[:] = np.arange(100, dtype=np.uint16).reshape(10, 10)
    arr.resize(6, 12)
    assert arr.shape == (6, 12)
    expected = np.zeros((6, 12), np.uint16)
    expected[:, :10] = np.arange(100, dtype=np.uint16).reshape(10, 10)[:6]
    assert np.array_equal(arr[:], expected)
    arr.resize((12, 12))
    assert arr.shape == (12, 12)
    assert np.array_equal(arr[:6], expected)
    # Chunk rows wholly outside the 6-row shape (rows 8..11) were dropped by the shrink,
    # so they read as the fill value. (Rows 6-7 share a chunk with rows 4-5 and keep
    # their old values, as in zarr.)
    assert np.array_equal(arr[8:, :], np.zeros((4, 12), np.uint16))
    assert myrepo.get_array("r").shape == (12, 12)
    with pytest.raises(InvalidIndexError):
        arr[12, 0]


def test_resize_is_versioned(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("r", ArrayDtype.uint8, shape=(4, 4))
    arr[:] = 1
    myrepo.lock_node("4x4")
    root = myrepo.get_current_version()
    myrepo.change_version(myrepo.create_branch("grow"))
    grown = myrepo.get_array("r")
    grown.resize(8, 8)
    grown[7, 7] = 2
    myrepo.change_version(root)
    old = myrepo.get_array("r")
    assert old.shape == (4, 4)
    assert np.array_equal(old[:], np.ones((4, 4), np.uint8))


_STEP_SELECTIONS = [
    (slice(None, None, -1), slice(None), slice(None)),
    (slice(8, 1, -2), slice(None, None, -3), 4),
    (slice(None, None, 2), slice(10, None, -1), slice(6, 0, -4)),
    (3, slice(-1, -9, -2), slice(None, None, -1)),
    (slice(0, 0, -1), slice(None), slice(None)),
    (Ellipsis, slice(None, None, -2)),
    (slice(None, None, -1), Ellipsis),
    (np.int64(2), Ellipsis, np.uint8(5)),
    (np.int32(-1), np.int16(3), slice(None, None, -1)),
    (Ellipsis,),
]


@pytest.mark.parametrize("sel", _STEP_SELECTIONS, ids=[str(s) for s in _STEP_SELECTIONS])
def test_selections_match_numpy(myrepo: DicedRepo, sel: tuple[object, ...]) -> None:
    shape = (9, 11, 7)
    rng = np.random.default_rng(7)
    initial = rng.integers(0, 1000, size=shape, dtype=np.uint16)
    arr = myrepo.create_array("steps", ArrayDtype.uint16, shape=shape, chunks=(4, 3, 5))
    arr[...] = initial
    oracle = initial.copy()

    got = arr[sel]
    assert np.array_equal(got, oracle[sel])
    assert np.shape(got) == oracle[sel].shape

    value = rng.integers(0, 1000, size=oracle[sel].shape, dtype=np.uint16)
    arr[sel] = value
    oracle[sel] = value
    assert np.array_equal(arr[:], oracle)

    arr[sel] = 999  # a scalar broadcasts, as in numpy
    oracle[sel] = 999
    assert np.array_equal(arr[...], oracle)


def test_numpy_integer_indices_on_unbounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("ints", ArrayDtype.uint8)
    arr[np.int64(5), np.uint16(6), np.int8(7)] = np.uint8(200)
    assert arr[5, 6, 7] == 200
    assert arr[np.uint32(5), np.int64(6), np.int16(7)] == 200
    assert np.array_equal(arr[np.int64(5), 6, 6:9], [0, 200, 0])


def test_zarr_interop_at_locked_version(myrepo: DicedRepo, store: DicedStore) -> None:
    em = myrepo.create_array("em", ArrayDtype.uint16, shape=(20, 30, 40), chunks=(8, 8, 8))
    data = np.arange(20 * 30 * 40, dtype=np.uint16).reshape(20, 30, 40)
    em[...] = data
    myrepo.lock_node("for zarr")
    locked_uuid = myrepo.get_current_version()
    child = myrepo.create_branch("after")
    myrepo.change_version(child)
    myrepo.get_array("em")[0, 0, 0] = 9999

    locked_repo = store.open_repo(uuid=locked_uuid)
    z = zarr.open_array(locked_repo.zarr_store(), path="em", mode="r")
    assert z.shape == (20, 30, 40)
    assert z.dtype == np.uint16
    assert np.array_equal(z[...], data)
    assert np.array_equal(z[3:9, ::2, 5], data[3:9, ::2, 5])
    assert np.array_equal(locked_repo.get_array("em").zarr[...], data)

    locked_store = locked_repo.zarr_store()
    assert locked_store.read_only is True
    writable = zarr.open_array(locked_store, path="em")
    with pytest.raises(ValueError, match="read-only"):
        writable[0, 0, 0] = 1
    assert zarr.open_array(locked_repo.zarr_store(), path="em", mode="r")[0, 0, 0] == 0

    # At the open child, zarr sees the child's data.
    child_z = zarr.open_array(store.open_repo(uuid=child).zarr_store(), path="em", mode="r")
    assert child_z[0, 0, 0] == 9999
    assert child_z[0, 0, 1] == 1


def test_zarr_writes_at_open_node_are_visible_to_diced(myrepo: DicedRepo) -> None:
    em = myrepo.create_array("em", ArrayDtype.uint8, shape=(16, 16), chunks=(8, 8))
    z = zarr.open_array(myrepo.zarr_store(), path="em")
    z[2:10, 3:5] = 42
    expected = np.zeros((16, 16), np.uint8)
    expected[2:10, 3:5] = 42
    assert np.array_equal(em[:], expected)
    assert np.array_equal(myrepo.get_array("em")[:], expected)


@pytest.mark.parametrize(("sel", "value_shape"), [
    ((slice(None, None, -1), 0, 0), (1, 4)),
    ((slice(None), 0, 0), (1, 1, 4)),
    ((slice(None, None, -1), slice(1, 3), 2), (1, 4, 2)),
    ((slice(0, 2), slice(None, None, -1), slice(None)), (2, 1, 4)),
])
def test_value_broadcasting_matches_numpy(myrepo: DicedRepo, sel: tuple[object, ...],
                                          value_shape: tuple[int, ...]) -> None:
    # numpy drops leading length-1 axes of the value and broadcasts the rest.
    arr = myrepo.create_array("b", ArrayDtype.uint16, shape=(4, 4, 4), chunks=(2, 2, 2))
    oracle = np.zeros((4, 4, 4), np.uint16)
    value = np.arange(1, 1 + int(np.prod(value_shape)), dtype=np.uint16).reshape(value_shape)
    oracle[sel] = value
    arr[sel] = value
    assert np.array_equal(arr[...], oracle)


_UNUSUAL_NAMES = ["a/b", ".", "..", "..a", "with space", "日本語", "é" * 100, "z" * 200]
_UNUSUAL_IDS = ["slash", "dot", "dotdot", "dotdot-a", "space", "cjk", "e-acute-x100", "z-x200"]


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


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int32, np.float32, np.float64,
                                   "uint16", ArrayDtype.uint32])
def test_other_numpy_dtypes_round_trip(myrepo: DicedRepo, store: DicedStore,
                                       dtype: object) -> None:
    np_dtype = np.dtype(dtype.value if isinstance(dtype, ArrayDtype) else dtype)
    arr = myrepo.create_array("d", dtype, shape=(6, 5), chunks=(4, 4))
    assert arr.dtype == np_dtype
    rng = np.random.default_rng(3)
    data = (rng.integers(-100, 100, size=(6, 5)) if np_dtype.kind in "iu"
            else rng.random((6, 5)) * 100).astype(np_dtype)
    if np_dtype.kind == "u":
        data = np.abs(data.astype(np.int64)).astype(np_dtype)
    if np_dtype.kind == "f":
        data[0, 0] = np.nan
    arr[...] = data
    myrepo.lock_node("typed")
    back = store.open_repo(uuid=myrepo.get_current_version()).get_array("d")[...]
    assert back.dtype == np_dtype
    assert np.array_equal(back, data, equal_nan=np_dtype.kind == "f")
    listed = dict(myrepo.list_instances())["d"]
    assert (listed.value if isinstance(listed, ArrayDtype) else listed) == np_dtype


def test_uuid_lookup_ignores_case(store: DicedStore, myrepo: DicedRepo) -> None:
    uuid_upper = myrepo.get_current_version().upper()
    assert store.open_repo(uuid=uuid_upper).get_current_version() == myrepo.uuid
    myrepo.change_version(uuid_upper[:10])
    assert myrepo.get_current_version() == uuid_upper.lower()


def test_zero_length_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("empty", np.float32, shape=(0, 5))
    assert arr.shape == (0, 5)
    assert arr[...].shape == (0, 5)
    arr[...] = 1.0  # writes nothing, like numpy
    assert arr.get_extents() == (slice(0, 0), slice(0, 0))
