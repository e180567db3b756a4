"""Store integrity: unreferenced objects are found (never referenced ones), and corrupt
chunk bytes are detected instead of returned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore, StorageError
from diced.versioning import keys
from diced.versioning.garbage import find_unreferenced


def _reads(store: DicedStore, uuid: str) -> tuple[bytes, bytes]:
    repo = store.open_repo(uuid=uuid)
    return repo.get_array("a")[...].tobytes(), repo.download_filedata("f")


def test_superseded_and_orphaned_objects_are_found(tmp_path: Path) -> None:
    store = DicedStore(str(tmp_path / "s"))
    repo = store.create_repo("r")
    arr = repo.create_array("a", "uint16", shape=(40, 40), chunks=(16, 16))
    arr[...] = 1
    arr[...] = 2  # supersedes every blob of the first write
    repo.upload_filedata("f", b"one")
    repo.lock_node("v1")
    first = repo.uuid
    child = repo.create_branch("b")
    repo.change_version(child)
    repo.get_array("a")[0:16, 0:16] = 7
    repo.upload_filedata("f", b"two")
    store.create_repo("gone").upload_filedata("x", b"bytes")
    store.delete_repo("gone")  # deletes its objects...
    store.backend.put(keys.blob("f" * 32, "ab" * 16), b"stray")  # ...a crash could leave some

    garbage = set(find_unreferenced(store.backend))

    assert keys.blob("f" * 32, "ab" * 16) in garbage
    # Each chunk of the first write was rewritten, so its blob is garbage now.
    blobs = {k for k in garbage if "/blobs/" in k}
    assert len(blobs) >= 2
    before = {u: _reads(store, u) for u in (first, child)}
    for key in garbage:
        store.backend.delete(key)
    fresh = DicedStore(str(tmp_path / "s"))
    assert {u: _reads(fresh, u) for u in (first, child)} == before
    assert set(find_unreferenced(fresh.backend)) == set()
    np.testing.assert_array_equal(fresh.open_repo(uuid=child).get_array("a")[0:16, 0:16], 7)


def test_pointers_of_locked_nodes_are_garbage_but_their_data_is_not(tmp_path: Path) -> None:
    store = DicedStore(str(tmp_path / "s"))
    repo = store.create_repo("r")
    repo.create_array("a", "uint8", shape=(8,), chunks=(4,))[...] = 5
    repo.upload_filedata("f", b"x")
    repo.lock_node("done")
    garbage = set(find_unreferenced(store.backend))
    assert garbage
    assert all("/open/" in k for k in garbage)
    for key in garbage:
        store.backend.delete(key)
    again = DicedStore(str(tmp_path / "s")).open_repo("r")
    assert again.get_array("a")[...].tolist() == [5] * 8


def test_corrupt_chunk_bytes_are_detected_not_returned(tmp_path: Path) -> None:
    store = DicedStore(str(tmp_path / "s"))
    repo = store.create_repo("r")
    repo.create_array("a", "uint8", shape=(8,), chunks=(8,))[...] = 3
    repo.lock_node("v")
    blob = next(k for k in store.backend.list_prefix("repos/") if "/blobs/" in k)
    data = bytearray(store.backend.get(blob) or b"")
    data[-1] ^= 0xFF
    store.backend.put(blob, bytes(data))
    with pytest.raises(StorageError, match="corrupt"):
        DicedStore(str(tmp_path / "s")).open_repo("r").get_array("a")[...]
