"""Garbage collection in one process: what it deletes, keeps, restores and refuses.

The races with other processes are in ``test_gc_concurrency.py``. Ages are set with
``os.utime`` on the local store's files (the collector reads modification times), so no
test waits for a grace period to pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from diced import ConflictError, DicedRepo, DicedStore, StorageError
from diced.backends import ObjectStore
from diced.backends._forwarding import ForwardingObjectStore
from diced.lifecycle.gc import collect_garbage
from diced.lifecycle.lease import GcLease
from diced.versioning import keys

HOUR = 3600.0


def files(root: Path) -> dict[str, int]:
    """Key → size of every object of a local store (its private directory excluded)."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if not rel.startswith(".diced-local/"):
                found[rel] = os.path.getsize(os.path.join(dirpath, name))
    return found


def digests(root: Path) -> dict[str, str]:
    found = {}
    for key in files(root):
        found[key] = hashlib.sha256((root / key).read_bytes()).hexdigest()
    return found


def age(root: Path, prefix: str = "", seconds: float = 2 * 24 * HOUR) -> None:
    """Make every object under ``prefix`` look written ``seconds`` ago."""
    then = time.time() - seconds
    for key in files(root):
        if key.startswith(prefix):
            os.utime(root / key, (then, then))


def build(store: DicedStore) -> tuple[DicedRepo, dict[str, bytes]]:
    """Repo ``keep``: locked v1, v2 and an open leaf v3; returns it and each version's
    array bytes."""
    repo = store.create_repo("keep")
    arr = repo.create_array("a", np.uint16, shape=(64, 64, 64), chunks=(16, 16, 16))
    arr[...] = np.random.default_rng(1).integers(0, 500, (64, 64, 64), dtype=np.uint16)
    repo.upload_filedata("README.md", b"# keep")
    repo.lock_node("v1")
    content = {repo.uuid: repo.get_array("a")[...].tobytes()}
    repo.change_version(repo.create_branch("v2"))
    repo.get_array("a")[0:16, 0:16, 0:32] = 7
    repo.lock_node("v2")
    content[repo.uuid] = repo.get_array("a")[...].tobytes()
    repo.change_version(repo.create_branch("v3"))
    repo.get_array("a")[32:48] = 9
    content[repo.uuid] = repo.get_array("a")[...].tobytes()
    return repo, content


def reads(location: Path, content: dict[str, bytes]) -> None:
    with DicedStore(str(location)) as store:
        for uuid, data in content.items():
            assert store.open_repo(uuid=uuid).get_array("a")[...].tobytes() == data, uuid


def test_deleting_a_repo_and_a_branch_then_gc_returns_the_bytes(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo, content = build(store)
    collect_garbage(store.backend, grace=0, progress=False)
    prefix = keys.repo_prefix(repo.repo_uuid)
    baseline = {k: s for k, s in files(root).items() if k.startswith(prefix)}
    needed = repo.storage_report().reachable

    # Grow the store: a side branch with two versions, superseded writes at v3, a repo.
    leaf = repo.uuid
    repo.change_version(repo.node_record(leaf).parents[0])
    side = repo.create_branch("side", "exp")
    repo.change_version(side)
    repo.get_array("a")[...] = 3
    repo.lock_node("exp 1")
    repo.change_version(repo.create_branch("exp 2"))
    repo.get_array("a")[0:32] = 4
    repo.change_version(leaf)
    original = repo.get_array("a")[32:48]
    repo.get_array("a")[32:48] = 11
    repo.get_array("a")[32:48] = original
    other = store.create_repo("tmp")
    other.create_array("b", np.uint8, shape=(128, 128))[...] = 5
    grown = sum(files(root).values())

    store.delete_repo("tmp")
    deletion = repo.delete_branch("exp")
    assert len(deletion.deleted) == 2 and deletion.kept == ()
    report = collect_garbage(store.backend, grace=0, progress=False)

    after = {k: s for k, s in files(root).items() if k.startswith(prefix)}
    print(f"repo bytes: {sum(baseline.values())} needed, {grown} with the extra data, "
          f"{sum(after.values())} after delete + gc (reclaimed {report.reclaimed.bytes})")
    assert after == baseline
    assert sum(after.values()) == needed.bytes
    usage = store.storage_report()
    assert usage.unreferenced.objects == 0 and usage.trash.objects == 0
    assert usage.total.objects == len(files(root))
    reads(root, content)


def test_dry_run_writes_nothing_and_predicts_the_run(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    _repo, content = build(store)
    age(root)
    before = digests(root)
    dry = collect_garbage(store.backend, grace=HOUR, dry_run=True, progress=False)
    assert digests(root) == before
    assert dry.deleted.objects > 0
    real = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert (real.deleted, real.trashed, real.reachable) == (dry.deleted, dry.trashed,
                                                            dry.reachable)
    reads(root, content)


def test_objects_younger_than_the_grace_period_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    _repo, content = build(store)
    young = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert young.kept_young.objects > 0
    assert young.deleted.objects == young.trashed.objects == 0
    age(root)
    old = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert old.kept_young.objects == 0
    assert old.deleted.objects + old.trashed.objects == young.kept_young.objects
    reads(root, content)


def test_blobs_go_to_the_trash_and_are_deleted_a_grace_period_later(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo, content = build(store)
    repo.get_array("a")[...] = 1  # supersedes every chunk of the open leaf
    repo.get_array("a")[...] = np.frombuffer(content[repo.uuid], np.uint16).reshape(64, 64, 64)
    age(root)
    first = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert first.trashed.objects > 0
    trash = {k for k in files(root) if k.startswith(keys.TRASH_PREFIX)}
    assert {keys.untrash(k) for k in trash} & set(files(root)) == set()
    assert first.trash_left.objects == len(trash)
    reads(root, content)
    again = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert again.deleted.objects == 0 and again.trash_left.objects == len(trash)
    age(root, keys.TRASH_PREFIX)
    last = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert last.deleted.objects == len(trash) and last.restored.objects == 0
    assert not any(k.startswith(keys.TRASH_PREFIX) for k in files(root))
    reads(root, content)


class _WriterBetweenCopyAndDelete(ForwardingObjectStore):
    """Runs ``write`` the first time the collector deletes a blob: after it copied the blob
    to the trash, before the delete lands (the race a reusing writer can win)."""

    def __init__(self, inner: ObjectStore, write: object) -> None:
        super().__init__(inner)
        self.write = write

    def delete(self, key: str) -> None:
        if "/blobs/" in key and self.write is not None:
            write, self.write = self.write, None
            write()  # type: ignore[operator]
        self.inner.delete(key)


def test_a_blob_reused_while_it_is_moved_to_the_trash_is_read_and_put_back(tmp_path: Path
                                                                          ) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo = store.create_repo("r")
    arr = repo.create_array("a", np.uint8, shape=(32,), chunks=(16,))
    arr[0:16] = 42
    arr[0:16] = 1  # the blob of sixteen 42s is now garbage
    age(root)
    garbage = {k for k in files(root) if "/blobs/" in k} - {
        keys.blob(repo.repo_uuid, d) for d in arr.chunk_digests().values()}
    assert len(garbage) == 1

    def writer() -> None:
        # Another process writes sixteen 42s: the blob is still in place, so the writer
        # reuses it and publishes a pointer to it; the collector then deletes it.
        with DicedStore(str(root)) as other:
            other.open_repo(uuid=repo.uuid).get_array("a")[16:32] = 42

    racing = _WriterBetweenCopyAndDelete(store.backend, writer)
    report = collect_garbage(racing, grace=HOUR, progress=False)
    assert report.trashed.objects == 1
    assert not (root / next(iter(garbage))).exists()
    assert DicedStore(str(root)).open_repo(uuid=repo.uuid).get_array("a")[16:32].tolist() \
        == [42] * 16  # read from the trash
    check = store.verify()
    assert check.ok and check.in_trash == tuple(garbage)

    age(root, keys.TRASH_PREFIX)
    settled = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert settled.restored.objects == 1
    assert (root / next(iter(garbage))).exists()
    assert not any(k.startswith(keys.TRASH_PREFIX) for k in files(root))
    assert store.verify().in_trash == ()
    assert store.open_repo(uuid=repo.uuid).get_array("a")[...].tolist() == [1] * 16 + [42] * 16


def test_gc_refuses_a_damaged_store_and_deletes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    build(store)
    age(root)
    page = next(k for k in files(root) if "/pages/" in k)
    (root / page).write_bytes(b"not a page")
    before = digests(root)
    with pytest.raises(StorageError, match=r"index page .* corrupt.*fsck"):
        collect_garbage(store.backend, grace=HOUR, progress=False)
    after = digests(root)
    assert after.pop(keys.GC_LEASE)  # the (released) lease is all it wrote
    assert after == before


def test_one_collector_at_a_time(tmp_path: Path) -> None:
    store = DicedStore(str(tmp_path / "s"))
    held = GcLease(store.backend, 60).acquire()
    with pytest.raises(ConflictError, match="another diced gc is running"):
        store.gc(0, progress=False)
    held.release()
    store.gc(0, progress=False)
    # A lease left behind by a killed collector is taken over once it has expired.
    store.backend.put(keys.GC_LEASE, json.dumps({"expires": time.time() - 1}).encode())
    store.gc(0, progress=False)


def test_keys_diced_does_not_write_and_fresh_temporaries_are_left_alone(tmp_path: Path
                                                                        ) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo, content = build(store)
    stray = f"repos/{repo.repo_uuid}/notes/by-hand.txt"
    store.backend.put(stray, b"mine")
    store.backend.put("elsewhere/data", b"mine too")
    tmp = root / ".diced-local" / "tmp"
    (tmp / "old").write_bytes(b"x" * 10)
    (tmp / "new").write_bytes(b"y" * 10)
    then = time.time() - 2 * HOUR
    os.utime(tmp / "old", (then, then))
    report = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert report.unknown.objects == 1
    assert report.temporaries.objects == 1 and report.temporaries.bytes == 10
    assert store.backend.get(stray) == b"mine" and store.backend.get("elsewhere/data")
    assert sorted(p.name for p in tmp.iterdir()) == ["new"]
    reads(root, content)


def test_gc_of_a_memory_store() -> None:
    with DicedStore(f"memory://gc-test-{uuid.uuid4().hex}") as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=(64,), chunks=(8,))[...] = 3
        repo.lock_node("v")
        report = store.gc(0, progress=False)
        # The root's array entry and its eight pointers: a locked node reads its manifest.
        assert report.deleted.objects == 9
        assert store.open_repo("r").get_array("a")[...].tolist() == [3] * 64
        assert store.storage_report().unreferenced.objects == 0


def test_a_torn_unreachable_blob_is_left_for_its_next_writer(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo = store.create_repo("r")
    arr = repo.create_array("a", np.uint16, shape=(64,), chunks=(64,))
    arr[...] = np.arange(64)
    arr[...] = 1  # the arange blob is garbage now
    garbage = next(k for k in files(root) if "/blobs/" in k and store.backend.get(k)
                   != store.backend.get(keys.blob(repo.repo_uuid,
                                                  arr.chunk_digests()[(0,)])))
    whole = (root / garbage).read_bytes()
    (root / garbage).write_bytes(whole[: len(whole) // 2])  # a writer killed mid-write
    age(root)
    report = collect_garbage(store.backend, grace=HOUR, progress=False)
    assert report.torn == 1 and (root / garbage).exists()
    arr[...] = np.arange(64)  # the next writer of those bytes repairs the copy
    assert (root / garbage).read_bytes() == whole
    assert store.verify(progress=False).ok
