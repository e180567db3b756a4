"""Stored sizes: per array and version, unique and shared, against the bytes on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from diced import DicedStore
from diced.versioning import keys


def size(root: Path, key: str) -> int:
    return os.path.getsize(root / key)


def root_page(root: Path, store: DicedStore, uuid: str, array: str) -> str:
    """The key of the root page of ``array``'s tree at locked version ``uuid``, read from its
    manifest on disk (a 2×2×2 grid of chunks fits one page, so it is the whole tree)."""
    repo = store.open_repo(uuid=uuid)
    manifest = root / keys.manifest(repo.repo_uuid, repo.node_record().manifest or "")
    return keys.page(repo.repo_uuid, json.loads(manifest.read_bytes())["arrays"][array]["root"])


def test_sizes_add_up_to_the_files_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = DicedStore(str(root))
    repo = store.create_repo("r")
    arr = repo.create_array("img", np.uint16, shape=(64, 64, 64), chunks=(32, 32, 32))
    arr[...] = np.random.default_rng(0).integers(0, 4000, (64, 64, 64), dtype=np.uint16)
    labels = repo.create_array("seg", np.uint64, shape=(64, 64, 64), chunks=(32, 32, 32))
    labels[...] = 7  # eight chunks of the same bytes: one blob
    repo.upload_filedata("README.md", b"# sizes")
    repo.lock_node("v1")
    v1 = repo.uuid
    repo.change_version(repo.create_branch("v2"))
    repo.get_array("img")[0:32, 0:32, 0:32] = 1
    repo.lock_node("v2")
    v2 = repo.uuid
    r = repo.repo_uuid

    report = repo.storage_report()
    by_uuid = {v.uuid: v for v in report.versions}
    first, second = by_uuid[v1], by_uuid[v2]

    img1 = {keys.blob(r, d) for d in store.open_repo(uuid=v1).get_array("img")
            .chunk_digests().values()}
    img_pages = {root_page(root, store, v1, "img")}
    img = first.array("img")
    assert img is not None and img.chunks == 8
    assert img.stored.objects == len(img1) + 1
    assert img.stored.bytes == sum(size(root, k) for k in img1 | img_pages)
    assert img.unique == img.stored and img.shared.bytes == 0  # v1 has no parent
    seg = first.array("seg")
    assert seg is not None and seg.chunks == 8 and seg.stored.objects == 2  # one blob, a page
    assert first.files.objects == 1 and first.files.bytes == len(b"# sizes")

    changed = second.array("img")
    assert changed is not None
    new_blob = keys.blob(r, store.open_repo(uuid=v2).get_array("img").chunk_digests()[(0, 0, 0)])
    new_page = root_page(root, store, v2, "img")
    assert changed.unique.bytes == size(root, new_blob) + size(root, new_page)
    assert changed.shared.bytes == changed.stored.bytes - changed.unique.bytes
    unchanged = second.array("seg")
    assert unchanged is not None and unchanged.unique.bytes == 0

    on_disk = sum(size(root, k) for k in store.backend.list_prefix(keys.repo_prefix(r)))
    assert report.total.bytes == on_disk
    assert report.reachable.bytes + report.unreferenced.bytes == on_disk
    # The open root's pointers were left behind by the lock: unreferenced until gc.
    assert report.unreferenced.objects > 0
    store.gc(0, progress=False)
    after = repo.storage_report(v2)
    assert [v.uuid for v in after.versions] == [v2]
    assert after.unreferenced.objects == 0
    assert after.versions[0].unique == second.unique

    whole = store.storage_report()
    assert [u.name for u in whole.repos] == ["r"]
    assert whole.total.bytes == sum(size(root, k) for k in store.backend.list_prefix(""))


def test_an_open_version_counts_its_parent_data_as_shared(tmp_path: Path) -> None:
    store = DicedStore(str(tmp_path / "s"))
    repo = store.create_repo("r")
    repo.create_array("a", np.uint8, shape=(64,), chunks=(16,))[...] = np.arange(64)
    repo.lock_node("v1")
    repo.change_version(repo.create_branch("open child"))
    repo.get_array("a")[0:16] = 200
    version = repo.storage_report(repo.uuid).versions[0]
    array = version.array("a")
    assert array is not None and array.chunks == 4
    assert array.unique.objects == 1  # the one new blob; three blobs and no page shared
    assert version.unique.objects == 3  # the blob, its pointer, the node record
    assert version.state == "open"
