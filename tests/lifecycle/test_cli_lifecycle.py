"""``diced du``, ``fsck``, ``gc``, ``clone``, ``sync``, ``push``, ``pull``, ``delete-branch``
and ``delete-version`` through click's runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from diced import DicedStore
from diced.cli import main
from diced.cli_lifecycle import human_bytes


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture
def location(tmp_path: Path) -> str:
    path = str(tmp_path / "s")
    with DicedStore(path) as store:
        repo = store.create_repo("em")
        repo.create_array("img", np.uint16, shape=(64, 64), chunks=(32, 32))[...] = \
            np.arange(4096, dtype=np.uint16).reshape(64, 64)
        repo.lock_node("v1")
        repo.change_version(repo.create_branch("v2"))
        repo.get_array("img")[0:32, 0:32] = 1
        repo.lock_node("v2")
        repo.create_branch("exp", "exp")
    return path


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**12)] == \
        ["0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 TB"]


def test_du(location: str) -> None:
    out = ok("du", location)
    assert "em" in out and "store:" in out
    detail = ok("du", location, "em", "--bytes")
    rows = [line for line in detail.splitlines() if line.startswith("│")]
    assert len([r for r in rows if "│ img " in r]) == 3  # one per version
    assert "(all)" in detail and "needed by its versions" in detail
    with DicedStore(location) as store:
        v1 = store.open_repo("em").get_commit_log()[0][0]
    one = ok("du", location, "em", "--version", v1)
    assert v1 in one and one.count("(all)") == 1
    assert run("du", location, "--version", v1).exit_code == 2


def test_fsck_and_gc(location: str) -> None:
    assert "no damage" in ok("fsck", location, "-q")
    dry = ok("gc", location, "--grace", "0", "--dry-run", "-q")
    assert "deleted (would): " in dry and "reclaimed" not in dry
    done = ok("gc", location, "--grace", "0", "-q")
    assert "reclaimed: " in done
    with DicedStore(location) as store:
        blob = next(k for k in store.backend.list_prefix("repos/") if "/blobs/" in k)
        store.backend.put(blob, b"damaged")
    result = run("fsck", location, "-q")
    assert result.exit_code == 1
    assert f"blob {blob}: corrupt" in result.stdout and "affects repo 'em'" in result.stdout
    assert "1 damaged object" in result.stdout
    assert "reclaimed" in ok("gc", location, "-q")  # a damaged blob references nothing
    with DicedStore(location) as store:
        page = next(k for k in store.backend.list_prefix("repos/") if "/pages/" in k)
        store.backend.put(page, b"damaged")
    refused = run("gc", location, "-q")
    assert refused.exit_code == 1 and "fsck" in refused.stderr
    assert run("gc", location, "--grace", "soon").exit_code == 1


def test_clone_push_pull_sync(location: str, tmp_path: Path) -> None:
    copy = str(tmp_path / "copy")
    cloned = ok("clone", location, copy, "-q")
    assert "em: 2 versions copied" in cloned and "open: lock it to copy it" in cloned
    again = run("clone", location, copy, "-q")
    assert again.exit_code == 1 and "use diced sync" in again.stderr
    assert "wrote 0 objects" in ok("push", location, copy, "-q")
    with DicedStore(copy) as store:
        repo = store.open_repo("em")
        repo.change_version(repo.create_branch("v3 at the copy"))
        repo.get_array("img")[...] = 3
        repo.lock_node("v3")
    pulled = ok("pull", location, copy, "-q")
    assert "em: 1 version copied, 2 already there" in pulled
    assert "wrote 0 objects" in ok("sync", copy, location, "-q")
    with DicedStore(location) as store:
        assert store.open_repo("em").get_array("img")[...].tolist() == [[3] * 64] * 64
    old = str(tmp_path / "old")
    with DicedStore(location) as store:
        v1 = store.open_repo("em").get_commit_log()[0][0]
    assert "em: 1 version copied" in ok("clone", location, old, "--version", v1, "-q")


def test_delete_branch_and_version(location: str) -> None:
    assert run("delete-branch", location, "em", "exp", input="n\n").exit_code == 1
    out = ok("delete-branch", location, "em", "exp", "--yes")
    assert "deleted 1 version of branch 'exp'" in out
    with DicedStore(location) as store:
        repo = store.open_repo("em")
        repo.change_version(repo.create_branch("v3"))
        v3 = repo.uuid
    assert f"deleted version {v3[:8]}" in ok("delete-version", location, "em", v3[:8], "--yes")
    refused = run("delete-version", location, "em", ":master", "--yes")
    assert refused.exit_code == 1 and "locked" in refused.stderr
