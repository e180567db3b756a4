"""The generic fsspec backend: reads any fsspec filesystem, refuses every write.

A filesystem without atomic create-only and compare-and-swap writes cannot keep
concurrent writers safe, so the backend declares itself read-only and each write raises a
StorageError naming the missing capability.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem

from diced import DicedStore, InvalidInputError, StorageError
from diced.backends import FsspecObjectStore, LocalObjectStore, ObjectStore, open_backend
from diced.testing import ObjectStoreTests


class TestFsspecObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        (tmp_path / "store").mkdir()
        store = FsspecObjectStore(LocalFileSystem(), str(tmp_path / "store"))
        yield store
        store.close()


def test_reads_match_the_local_backend(tmp_path: Path) -> None:
    writer = LocalObjectStore(str(tmp_path))
    for key in ["digits", "names/foo.json", "names/bar", "namesake", "enc/[glob]*?", "empty"]:
        writer.put(key, b"0123456789" if key == "digits" else key.encode())
    writer.put("empty", b"")
    reader = FsspecObjectStore(LocalFileSystem(), str(tmp_path))
    assert reader.get("digits") == b"0123456789"
    assert reader.get_range("digits", 8, 10) == b"89"
    assert reader.get_range("digits", 10, 1) == b""
    assert reader.get_range("digits", 3, 0) == b""
    assert reader.get("empty") == b"" and reader.get_range("empty", 0, 5) == b""
    assert reader.get("names") is None and reader.get_range("names", 0, 1) is None
    assert reader.get("enc/[glob]*?") == b"enc/[glob]*?"
    assert sorted(reader.list_prefix("names")) == ["names/bar", "names/foo.json", "namesake"]
    assert sorted(reader.list_prefix("names/")) == ["names/bar", "names/foo.json"]


def _write_a_store(path: Path) -> str:
    with DicedStore(str(path)) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.int16, shape=(20, 30), chunks=(8, 8))[...] = 7
        repo.upload_filedata("dir/f.txt", b"text")
        repo.lock_node("v1")
        return repo.uuid


@pytest.mark.parametrize("url", ["local://{path}", "zip://::file://{zip}"],
                         ids=["local", "zip"])
def test_a_store_reads_through_any_fsspec_url(tmp_path: Path, url: str) -> None:
    node = _write_a_store(tmp_path / "store")
    archive = shutil.make_archive(str(tmp_path / "store"), "zip", tmp_path / "store")
    location = url.format(path=tmp_path / "store", zip=archive)
    with DicedStore(location) as store:
        assert isinstance(store.backend, FsspecObjectStore)
        assert not store.backend.writable
        repo = store.open_repo("r")
        assert repo.uuid == node
        assert np.all(repo.get_array("a")[...] == 7)
        assert repo.download_filedata("dir/f.txt") == b"text"


def test_every_write_names_the_missing_capability(tmp_path: Path) -> None:
    _write_a_store(tmp_path / "store")
    store = open_backend(f"local://{tmp_path / 'store'}")
    assert store.get("diced.json") is not None
    writes = [lambda: store.put("k", b"v"), lambda: store.put_if_absent("k", b"v"),
              lambda: store.compare_and_swap("diced.json", b"", b"v"),
              lambda: store.delete("diced.json")]
    for write in writes:
        with pytest.raises(StorageError, match="atomic_conditional_writes"):
            write()
    assert store.get("k") is None
    with DicedStore(f"local://{tmp_path / 'store'}") as diced_store, \
            pytest.raises(StorageError, match="atomic_conditional_writes"):
        diced_store.create_repo("another")


def test_an_empty_location_cannot_become_a_store(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="atomic_conditional_writes"):
        DicedStore(f"local://{tmp_path}")


def test_unknown_schemes_and_misplaced_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unsupported store location"):
        open_backend("nosuchscheme://x/y")
    with pytest.raises(InvalidInputError, match="permissionfile"):
        open_backend("s3://bucket/x", permissionfile="key.json")
    with pytest.raises(InvalidInputError, match="storage_options"):
        open_backend(str(tmp_path), storage_options={"anon": True})
    with pytest.raises(InvalidInputError, match="anonymous"):
        open_backend(f"local://{tmp_path}", anonymous=True)
    with pytest.raises(InvalidInputError, match="names no bucket"):
        open_backend("gs:///prefix")
