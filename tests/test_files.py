"""Versioned files of a repo: names, contents, overwrite, delete and visibility by version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from diced import DicedRepo, DicedStore, InvalidInputError, LockedError, NotFoundError

ODD_NAMES = [
    ".hidden",
    "zebra.txt",
    "a",
    "a/b",
    "a/b/c.txt",
    "-dash",
    "~tilde",
    "0zero",
    "Zcaps",
    "with space.txt",
    "percent%41.txt",
    "plus+and&amp.txt",
    "question?.txt",
    "hash#1",
    "back\\slash",
    "trailing/",
    "/leading",
    "a//double",
    "./a",
    "a/../b",
    "...",
    "données/élan.txt",
    "日本語.txt",
    "emoji-🧠.bin",
]


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DicedStore]:
    if request.param == "local":
        with DicedStore(str(tmp_path / "files.diced")) as s:
            yield s
        return
    name = f"diced-files-{uuid.uuid4().hex}"
    with DicedStore(f"memory://{name}") as s:
        yield s
    MemoryFileSystem().rm(f"/{name}", recursive=True)


@pytest.fixture
def repo(store: DicedStore) -> DicedRepo:
    return store.create_repo("files")


def test_names_with_slashes(repo: DicedRepo) -> None:
    repo.upload_filedata("dir/sub/file.txt", b"deep")
    repo.upload_filedata("dir/other.txt", b"shallow")
    assert repo.download_filedata("dir/sub/file.txt") == b"deep"
    assert repo.download_filedata("dir/other.txt") == b"shallow"
    assert repo.list_files() == ["dir/other.txt", "dir/sub/file.txt"]
    with pytest.raises(NotFoundError):
        repo.download_filedata("dir")
    with pytest.raises(NotFoundError):
        repo.download_filedata("dir/sub")


def test_empty_file(repo: DicedRepo) -> None:
    repo.upload_filedata("empty", b"")
    repo.upload_filedata("empty-str", "")
    assert repo.download_filedata("empty") == b""
    assert repo.download_filedata("empty-str") == b""
    assert repo.list_files() == ["empty", "empty-str"]
    repo.lock_node("empty files")
    assert repo.download_filedata("empty") == b""
    assert repo.list_files() == ["empty", "empty-str"]


def test_binary_data(repo: DicedRepo) -> None:
    data = bytes(range(256)) * 17 + b"\x00\xff\x00"
    repo.upload_filedata("blob.bin", data)
    repo.upload_filedata("bytearray.bin", bytearray(b"\x00\x01\x02"))
    repo.upload_filedata("memoryview.bin", memoryview(b"\x10\x20"))
    assert repo.download_filedata("blob.bin") == data
    assert repo.download_filedata("bytearray.bin") == b"\x00\x01\x02"
    assert repo.download_filedata("memoryview.bin") == b"\x10\x20"
    assert isinstance(repo.download_filedata("blob.bin"), bytes)


def test_large_file(repo: DicedRepo) -> None:
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    repo.upload_filedata("big.bin", data)
    repo.lock_node("big")
    assert repo.download_filedata("big.bin") == data


def test_str_data_is_utf8(repo: DicedRepo) -> None:
    text = "héllo wörld — 日本 🧠"
    repo.upload_filedata("text.txt", text)
    assert repo.download_filedata("text.txt") == text.encode("utf-8")
    assert repo.download_filedata("text.txt").decode("utf-8") == text


def test_overwrite(repo: DicedRepo) -> None:
    repo.upload_filedata("f.txt", "one")
    repo.upload_filedata("f.txt", "two, longer")
    assert repo.download_filedata("f.txt") == b"two, longer"
    repo.upload_filedata("f.txt", "3")
    assert repo.download_filedata("f.txt") == b"3"
    assert repo.list_files() == ["f.txt"]
    # Same content in two files is fine (content-addressed), and they stay independent.
    repo.upload_filedata("g.txt", "3")
    repo.upload_filedata("f.txt", "4")
    assert repo.download_filedata("g.txt") == b"3"
    assert repo.download_filedata("f.txt") == b"4"


def test_overwrite_in_child_keeps_parent(repo: DicedRepo) -> None:
    repo.upload_filedata("f.txt", "parent")
    repo.lock_node("parent")
    parent = repo.get_current_version()
    child = repo.create_branch("child")
    repo.change_version(child)
    assert repo.download_filedata("f.txt") == b"parent"
    repo.upload_filedata("f.txt", "child")
    assert repo.download_filedata("f.txt") == b"child"
    repo.change_version(parent)
    assert repo.download_filedata("f.txt") == b"parent"
    repo.change_version(child)
    repo.lock_node("child")
    assert repo.download_filedata("f.txt") == b"child"


def test_delete_hides_in_node_and_descendants_not_ancestors(repo: DicedRepo) -> None:
    repo.upload_filedata("keep.txt", "k")
    repo.upload_filedata("gone.txt", "g")
    repo.lock_node("root")
    root = repo.get_current_version()
    child = repo.create_branch("child")
    sibling = repo.create_branch("sibling", name="sibling")
    repo.change_version(child)
    repo.delete_file("gone.txt")
    assert repo.list_files() == ["keep.txt"]
    with pytest.raises(NotFoundError, match=r"gone\.txt"):
        repo.download_filedata("gone.txt")
    with pytest.raises(NotFoundError):
        repo.delete_file("gone.txt")  # already deleted here
    repo.lock_node("deleted")
    assert repo.list_files() == ["keep.txt"]
    grandchild = repo.create_branch("grandchild")
    repo.change_version(grandchild)
    assert repo.list_files() == ["keep.txt"]
    with pytest.raises(NotFoundError):
        repo.download_filedata("gone.txt")
    # Re-creating after a delete works in a descendant.
    repo.upload_filedata("gone.txt", "back")
    assert repo.list_files() == ["gone.txt", "keep.txt"]
    assert repo.download_filedata("gone.txt") == b"back"

    repo.change_version(root)
    assert repo.list_files() == ["gone.txt", "keep.txt"]
    assert repo.download_filedata("gone.txt") == b"g"
    repo.change_version(sibling)
    assert repo.list_files() == ["gone.txt", "keep.txt"]
    assert repo.download_filedata("gone.txt") == b"g"


def test_delete_then_reupload_in_same_open_node(repo: DicedRepo) -> None:
    repo.upload_filedata("f", "1")
    repo.delete_file("f")
    assert repo.list_files() == []
    repo.upload_filedata("f", "2")
    assert repo.download_filedata("f") == b"2"
    repo.delete_file("f")
    repo.lock_node("deleted")
    assert repo.list_files() == []
    with pytest.raises(NotFoundError):
        repo.download_filedata("f")


def test_list_files_sorted_with_odd_names(repo: DicedRepo) -> None:
    for i, name in enumerate(ODD_NAMES):
        repo.upload_filedata(name, f"content {i}")
    assert repo.list_files() == sorted(ODD_NAMES)
    for i, name in enumerate(ODD_NAMES):
        assert repo.download_filedata(name) == f"content {i}".encode()
    repo.lock_node("odd names")
    assert repo.list_files() == sorted(ODD_NAMES)
    for i, name in enumerate(ODD_NAMES):
        assert repo.download_filedata(name) == f"content {i}".encode()


def test_a_and_a_slash_b_coexist(repo: DicedRepo) -> None:
    repo.upload_filedata("a", "file a")
    repo.upload_filedata("a/b", "file a/b")
    assert repo.list_files() == ["a", "a/b"]
    assert repo.download_filedata("a") == b"file a"
    assert repo.download_filedata("a/b") == b"file a/b"
    repo.delete_file("a")
    assert repo.list_files() == ["a/b"]
    assert repo.download_filedata("a/b") == b"file a/b"


def test_unicode_names_are_distinct_from_escaped_forms(repo: DicedRepo) -> None:
    # Names are stored escaped; a name that looks like an escape must not collide.
    repo.upload_filedata("é", "accent")
    repo.upload_filedata("%C3%A9", "literal percent form")
    repo.upload_filedata("a/b", "slash")
    repo.upload_filedata("a%2Fb", "escaped slash")
    assert repo.list_files() == sorted(["é", "%C3%A9", "a/b", "a%2Fb"])
    assert repo.download_filedata("é") == b"accent"
    assert repo.download_filedata("%C3%A9") == b"literal percent form"
    assert repo.download_filedata("a/b") == b"slash"
    assert repo.download_filedata("a%2Fb") == b"escaped slash"


def test_file_writes_refused_on_locked_node(repo: DicedRepo) -> None:
    repo.upload_filedata("f", "v1")
    repo.lock_node("locked")
    with pytest.raises(LockedError, match="locked"):
        repo.upload_filedata("f", "v2")
    with pytest.raises(LockedError, match="locked"):
        repo.delete_file("f")
    assert repo.list_files() == ["f"]
    assert repo.download_filedata("f") == b"v1"


def test_files_visible_from_other_handles(store: DicedStore, repo: DicedRepo) -> None:
    repo.upload_filedata("shared.txt", "from one handle")
    other = store.open_repo("files")
    assert other.list_files() == ["shared.txt"]
    assert other.download_filedata("shared.txt") == b"from one handle"
    other.delete_file("shared.txt")
    assert repo.list_files() == []


def test_files_survive_reopening_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "persist.diced")
    with DicedStore(path) as store:
        repo = store.create_repo("r")
        for name in ODD_NAMES[:8]:
            repo.upload_filedata(name, name)
        repo.lock_node("saved")
        repo.change_version(repo.create_branch("open child"))
        repo.upload_filedata("open-only", b"\x00")
    with DicedStore(path) as store:
        repo = store.open_repo("r")
        assert repo.list_files() == sorted([*ODD_NAMES[:8], "open-only"])
        assert repo.download_filedata("open-only") == b"\x00"
        for name in ODD_NAMES[:8]:
            assert repo.download_filedata(name) == name.encode()


@pytest.mark.parametrize("name", [".", ".."], ids=["dot", "dotdot"])
def test_dot_names(repo: DicedRepo, name: str) -> None:
    # Valid file names (1-1024 characters, no NUL); they must not be taken as paths.
    repo.upload_filedata("other", "other")
    repo.upload_filedata(name, f"named {name}")
    assert repo.download_filedata(name) == f"named {name}".encode()
    assert repo.list_files() == sorted([name, "other"])
    repo.lock_node("dots")
    assert repo.download_filedata(name) == f"named {name}".encode()
    assert repo.download_filedata("other") == b"other"
    repo.change_version(repo.create_branch("child"))
    repo.delete_file(name)
    assert repo.list_files() == ["other"]


@pytest.mark.parametrize("name", ["x" * 1024, "y" * 300, "é" * 512, "日" * 341,
                                  "/".join(["d" * 250] * 4)],
                         ids=["x-1024", "y-300", "e-acute-512", "cjk-341", "4-segments-of-250"])
def test_long_names_up_to_the_documented_limit(repo: DicedRepo, name: str) -> None:
    assert len(name.encode()) <= 1024
    repo.upload_filedata(name, b"long")
    assert repo.download_filedata(name) == b"long"
    assert repo.list_files() == [name]
    repo.lock_node("long")
    assert repo.download_filedata(name) == b"long"
    assert repo.list_files() == [name]


def test_names_over_1024_utf8_bytes_are_refused(repo: DicedRepo) -> None:
    with pytest.raises(InvalidInputError, match="1024 bytes"):
        repo.upload_filedata("日" * 342, b"too long")
    assert repo.list_files() == []
