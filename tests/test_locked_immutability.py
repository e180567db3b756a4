"""A locked node never changes, whatever its descendants do, and refuses every write.

A digest (sha256 over every array's metadata and full contents, and every file) is taken
at locked nodes; then descendants on several branches write overlapping regions, delete
and re-create arrays and files under the same names, resize, and write through zarr. The
store is reopened from disk by a new ``DicedStore`` and the locked digests must match.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.core.buffer import default_buffer_prototype

from diced import DicedRepo, DicedStore, LockedError


def node_digest(repo: DicedRepo) -> str:
    """sha256 over every array (name, dtype, shape, chunks, contents) and file at the node."""
    h = hashlib.sha256()
    for name, _ in repo.list_instances():
        arr = repo.get_array(name)
        h.update(f"array {name} {arr.dtype} {arr.shape} {arr.chunks} {arr.unbounded}\n".encode())
        if arr.unbounded:
            region = arr.get_extents()
            h.update(repr(region).encode())
            data = arr[region]
        else:
            data = arr[...]
        h.update(np.ascontiguousarray(data).tobytes())
    for name in repo.list_files():
        data = repo.download_filedata(name)
        h.update(f"file {name} {len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


def snapshot(repo: DicedRepo) -> dict[str, Any]:
    """Everything at the node, for a readable diff when a digest differs."""
    out: dict[str, Any] = {}
    for name, _ in repo.list_instances():
        arr = repo.get_array(name)
        out[f"array:{name}"] = arr[arr.get_extents()] if arr.unbounded else arr[...]
    for name in repo.list_files():
        out[f"file:{name}"] = repo.download_filedata(name)
    return out


def assert_snapshot_equal(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if isinstance(value, bytes):
            assert got[key] == value, key
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
            assert got[key].dtype == value.dtype, key


def assert_refuses_writes(repo: DicedRepo) -> None:
    """Every write path on a handle at a locked node raises LockedError; nothing changes."""
    before = node_digest(repo)
    names = [n for n, _ in repo.list_instances()]
    for name in names:
        arr = repo.get_array(name)
        assert arr.locked
        origin = (0,) * arr.ndim
        with pytest.raises(LockedError):
            arr[origin] = 1
        with pytest.raises(LockedError):
            arr[...] = 0
        with pytest.raises(LockedError):
            arr.resize(*(1,) * arr.ndim)
        with pytest.raises(LockedError):
            repo.delete_array(name)
    with pytest.raises(LockedError):
        repo.create_array("brand_new", np.uint8, shape=(4,))
    with pytest.raises(LockedError):
        repo.upload_filedata("brand-new.txt", b"x")
    for name in repo.list_files():
        with pytest.raises(LockedError):
            repo.upload_filedata(name, b"overwritten")
        with pytest.raises(LockedError):
            repo.delete_file(name)
    with pytest.raises(LockedError):
        repo.lock_node("again")

    store = repo.zarr_store()
    assert store.read_only
    assert store.with_read_only(False).read_only, "a locked node cannot be made writable"
    for name in names:
        z = zarr.open_array(store, path=name)
        assert z.read_only
        with pytest.raises(ValueError, match="read-only"):
            z[(0,) * z.ndim] = 1
        with pytest.raises(ValueError, match="read-only"):
            zarr.open_array(store, path=name, mode="w", shape=(3,), dtype="u1")
        buffer = default_buffer_prototype().buffer.from_bytes(b"\x00" * 8)
        with pytest.raises(ValueError, match="read-only"):
            asyncio.run(store.set(f"{name}/c/" + "/".join("0" * z.ndim), buffer))
        with pytest.raises(ValueError, match="read-only"):
            asyncio.run(store.delete(f"{name}/zarr.json"))
    assert node_digest(repo) == before


# -- a scripted history -----------------------------------------------------------------------


def populate_root(repo: DicedRepo) -> None:
    rng = np.random.default_rng(7)
    img = repo.create_array("img", np.uint8, shape=(20, 30, 10), chunks=(7, 8, 4))
    img[...] = rng.integers(0, 256, size=img.shape, dtype=np.uint8)
    labels = repo.create_array("labels", np.uint64, shape=(16, 16, 16), chunks=(5, 5, 5),
                               islabel3D=True)
    labels[2:11, ::3, -7:] = np.uint64(2**63 + 5)
    vec = repo.create_array("vec", np.float32, shape=(50,), chunks=(8,))
    vec[::-1] = np.linspace(-1, 1, 50, dtype=np.float32)
    sparse = repo.create_array("sparse", np.uint16, dims=3, chunks=(8, 8, 8))
    sparse[1000:1010, 5:9, 70:90] = 65535
    repo.upload_filedata("a.txt", "first")
    repo.upload_filedata("b.bin", bytes(range(256)))
    repo.upload_filedata("dir/c.json", b'{"k": 1}')


def churn(repo: DicedRepo, seed: int) -> None:
    """Overlapping writes, deletes, re-creations under the same names, resizes, zarr writes."""
    rng = np.random.default_rng(seed)
    img = repo.get_array("img")
    if img.ndim == 3:
        img[5:15, 10:25, :] = 0
        img[::-2, 3, 1:9] = rng.integers(0, 256, size=(10, 8), dtype=np.uint8)
    else:
        img[::-1, 1:] = np.float64(seed)
    labels = repo.get_array("labels")
    labels[...] = np.uint64(seed)
    labels[0, 0, 0] = np.uint64(2**64 - 1)
    vec = repo.get_array("vec")
    vec.resize(20)
    vec[:] = np.float32(seed)
    vec.resize(70)
    vec[60:] = np.nan
    sparse = repo.get_array("sparse")
    sparse[1000:1005, 5:9, 70:90] = 1
    sparse[1100:1103, 0, 0] = 9  # widens the extents (a far write would make them huge)
    repo.delete_array("img")
    remade = repo.create_array("img", np.float64, shape=(5, 5), chunks=(2, 2))
    remade[...] = rng.random((5, 5))
    repo.delete_array("labels")
    repo.create_array("labels", np.uint64, shape=(16, 16, 16), chunks=(5, 5, 5))
    repo.delete_file("a.txt")
    repo.upload_filedata("a.txt", f"rewritten {seed}")
    repo.upload_filedata("b.bin", b"")
    if "dir/c.json" in repo.list_files():
        repo.delete_file("dir/c.json")
    else:
        repo.upload_filedata("dir/c.json", b"{}")
    repo.upload_filedata("new.txt", b"descendant only")
    z = zarr.open_array(repo.zarr_store(), path="vec", mode="r+")
    z[:8] = np.float32(-seed)
    if "zarr_made" in dict(repo.list_instances()):
        repo.delete_array("zarr_made")
    repo.create_array("zarr_made", np.int8, shape=(9,), chunks=(4,))[...] = -1


def test_locked_nodes_survive_descendants_and_reopen(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("immutable", "locked nodes never change")
        populate_root(repo)
        stale = repo.get_array("img")  # a handle made while the node was open
        repo.lock_node("root data")
        root = repo.uuid
        expected_root = snapshot(repo)
        digests = {root: node_digest(repo)}
        with pytest.raises(LockedError):
            stale[0, 0, 0] = 1

        # master continues: churn, lock, continue again and churn differently
        repo.change_version(repo.create_branch("master 1"))
        churn(repo, seed=1)
        repo.lock_node("master 1")
        master1 = repo.uuid
        digests[master1] = node_digest(repo)
        repo.change_version(repo.create_branch("master 2"))
        churn(repo, seed=2)
        repo.delete_array("vec")
        repo.create_array("vec", np.uint8, shape=(3,))

        # side branches from the root and from master 1, each churning and branching again
        for parent, name, seed in ((root, "side", 3), (master1, "side-of-1", 4)):
            repo.change_version(parent)
            repo.change_version(repo.create_branch(f"{name} start", name))
            churn(repo, seed)
            repo.lock_node(f"{name} locked")
            digests[repo.uuid] = node_digest(repo)
            repo.change_version(repo.create_branch(f"{name} more"))
            churn(repo, seed + 10)

        for uuid, digest in digests.items():
            assert node_digest(store.open_repo(uuid=uuid)) == digest, uuid

    with DicedStore(location) as reopened:
        for uuid, digest in digests.items():
            locked = reopened.open_repo(uuid=uuid)
            assert locked.locked
            assert node_digest(locked) == digest, uuid
            assert_refuses_writes(locked)
        assert_snapshot_equal(snapshot(reopened.open_repo(uuid=root)), expected_root)
        assert len(reopened.open_repo("immutable").list_nodes()) == 7


def test_stale_handle_cannot_write_after_another_handle_locks(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with DicedStore(location) as store:
        repo = store.create_repo("stale")
        arr = repo.create_array("a", np.int32, shape=(10,), chunks=(3,))
        arr[...] = 1
        repo.upload_filedata("f", b"one")
        with DicedStore(location) as other_store:
            other = other_store.open_repo(uuid=repo.uuid)
            other.lock_node("locked elsewhere")
        before = node_digest(repo)
        with pytest.raises(LockedError):
            arr[2:5] = 7
        with pytest.raises(LockedError):
            arr.resize(4)
        with pytest.raises(LockedError):
            repo.upload_filedata("f", b"two")
        with pytest.raises(LockedError):
            repo.delete_array("a")
        with pytest.raises(LockedError):
            repo.create_array("b", np.int32, shape=(2,))
        with pytest.raises(LockedError):
            repo.lock_node("twice")
        assert repo.locked
        assert node_digest(repo) == before
    with DicedStore(location) as reopened:
        assert node_digest(reopened.open_repo(uuid=repo.uuid)) == before


# -- random histories -------------------------------------------------------------------------

OPS = st.sampled_from(["write", "overlap", "delete_array", "recreate", "resize", "file",
                       "delete_file", "lock_and_branch", "branch_elsewhere", "zarr_write"])


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=st.lists(st.tuples(OPS, st.integers(0, 2**16)), min_size=5, max_size=30))
def test_random_descendant_churn_never_changes_locked_nodes(
        ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        location = str(Path(tmp) / "store")
        digests: dict[str, str] = {}
        with DicedStore(location) as store:
            repo = store.create_repo("random")
            populate_root(repo)
            repo.lock_node("root")
            root = repo.uuid
            digests[root] = node_digest(repo)
            repo.change_version(repo.create_branch("work"))
            branch_count = 0
            for op, seed in ops:
                rng = np.random.default_rng(seed)
                arrays = [n for n, _ in repo.list_instances() if n != "sparse"]
                name = arrays[seed % len(arrays)] if arrays else None
                if op in ("write", "overlap") and name:
                    arr = repo.get_array(name)
                    sel = tuple(slice(int(rng.integers(0, n + 1)), None,
                                      int(rng.choice([1, 2, -1, -3]))) for n in arr.shape)
                    value = rng.integers(0, 100, size=arr[sel].shape).astype(arr.dtype)
                    arr[sel] = value
                    if op == "overlap":
                        arr[sel] = value[::-1] if value.ndim else value
                elif op == "delete_array" and name:
                    repo.delete_array(name)
                elif op == "recreate":
                    target = name or "img"
                    if name:
                        repo.delete_array(target)
                    arr = repo.create_array(target, np.int16, shape=(seed % 13 + 1, 4),
                                            chunks=(3, 3))
                    arr[...] = np.int16(seed % 1000)
                elif op == "resize" and name:
                    arr = repo.get_array(name)
                    arr.resize(*(int(rng.integers(0, 2 * n + 2)) for n in arr.shape))
                elif op == "file":
                    repo.upload_filedata(f"f{seed % 3}", rng.bytes(seed % 50))
                elif op == "delete_file":
                    files = repo.list_files()
                    if files:
                        repo.delete_file(files[seed % len(files)])
                elif op == "lock_and_branch":
                    repo.lock_node(f"step {seed}")
                    digests[repo.uuid] = node_digest(repo)
                    repo.change_version(repo.create_branch(f"after {seed}"))
                elif op == "branch_elsewhere":
                    locked = sorted(digests)
                    repo.change_version(locked[seed % len(locked)])
                    branch_count += 1
                    repo.change_version(repo.create_branch("elsewhere", f"b{branch_count}"))
                elif op == "zarr_write" and name:
                    z = zarr.open_array(repo.zarr_store(), path=name, mode="r+")
                    if z.size:
                        z[(0,) * z.ndim] = 1
        with DicedStore(location) as reopened:
            for uuid, digest in digests.items():
                assert node_digest(reopened.open_repo(uuid=uuid)) == digest, uuid
            assert_refuses_writes(reopened.open_repo(uuid=root))
