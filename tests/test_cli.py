"""The ``diced`` command line, through click's runner and as the installed console script."""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import diced
from diced import DicedStore
from diced.cli import main

UUID = re.compile(r"^[0-9a-f]{32}$")
BINARY = bytes(range(256)) * 40 + b"\x00\r\n\xff"


@pytest.fixture
def location(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def run(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def ok(*args: str, input: bytes | str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(*args: str, code: int = 1, input: bytes | str | None = None) -> str:
    """Run a command that must fail with ``code``; return its stderr (one error line)."""
    result = run(*args, input=input)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1
        assert result.stdout == ""
    return result.stderr


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table, as lists of stripped cells."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")]
            for line in output.splitlines() if line.startswith("│")]


def create(location: str, name: str = "vol") -> str:
    root = ok("create", location, name, "--description", "a test repo").stdout.strip()
    assert UUID.match(root)
    return root


def test_version_and_help() -> None:
    assert ok("--version").stdout.strip() == f"diced, version {diced.__version__}"
    help_text = ok("--help").stdout
    for command in ("demo", "repos", "create", "delete", "log", "dag", "lock", "branch",
                    "arrays", "files", "put", "get"):
        assert command in help_text


def test_create_and_repos(location: str) -> None:
    root = create(location, "vol")
    other = create(location, "[bold]raw")
    rows = table_rows(ok("repos", location).stdout)
    # Names are printed as they are, never read as rich markup.
    assert [row[:3] for row in rows] == [["[bold]raw", other, "a test repo"],
                                         ["vol", root, "a test repo"]]
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", row[3]) for row in rows)
    assert DicedStore(location).list_repos() == sorted([("vol", root), ("[bold]raw", other)])


def test_create_existing_name_fails(location: str) -> None:
    create(location)
    assert "a repo named 'vol' already exists" in fails("create", location, "vol")


def test_delete_needs_confirmation(location: str) -> None:
    create(location, "vol")
    result = run("delete", location, "vol", input="n\n")
    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert [name for name, _ in DicedStore(location).list_repos()] == ["vol"]
    assert "deleted repo 'vol'" in ok("delete", location, "vol", input="y\n").stdout
    create(location, "vol")
    ok("delete", location, "vol", "--yes")
    assert DicedStore(location).list_repos() == []
    assert "no repo named 'vol'" in fails("delete", location, "vol", "--yes")


def test_lock_branch_log_and_dag(location: str) -> None:
    root = create(location)
    assert ok("lock", location, "vol", "-m", "first import").stdout.strip() == f"locked {root}"
    child = ok("branch", location, "vol", "--version", root[:6], "-m", "more").stdout.strip()
    feature = ok("branch", location, "vol", "--version", root, "-m", "try",
                 "--name", "feature").stdout.strip()
    assert UUID.match(child) and UUID.match(feature)

    log = ok("log", location, "vol").stdout  # default: newest version of master
    assert root in log and child in log and feature not in log
    assert "first import" in log and "(open node)" in log
    assert log.index(root) < log.index(child)
    for ref in (":feature", f"{root}:feature", feature[:10], feature):
        log = ok("log", location, "vol", "--version", ref).stdout
        assert feature in log and child not in log and "feature" in log

    assert table_rows(ok("dag", location, "vol").stdout) == [
        ["", root[:8], "master", "locked", "", "root", "first import"],
        ["*", child[:8], "master", "open", root[:8], "more", ""],
        ["*", feature[:8], "feature", "open", root[:8], "try", ""],
    ]


def test_version_errors(location: str) -> None:
    root = create(location)
    assert "no version node starts with 'ffff'" in fails(
        "log", location, "vol", "--version", "ffff")
    assert "no branch named 'nope'" in fails("files", location, "vol", "--version", ":nope")
    assert "no repo named 'missing'" in fails("log", location, "missing")
    assert "no repo named 'missing'" in fails("dag", location, "missing")
    assert "is open: lock it" in fails("branch", location, "vol", "-m", "too early")
    ok("lock", location, "vol", "-m", "done")
    assert "already locked" in fails("lock", location, "vol", "--version", root, "-m", "again")
    ok("branch", location, "vol", "-m", "child")
    assert "already has a child" in fails("branch", location, "vol", "--version", root,
                                          "-m", "twin")


def test_unknown_store_location(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    assert "no diced store at" in fails("repos", missing)
    assert not os.path.exists(missing)  # reading never creates a store
    assert "does not exist" in fails("create", str(tmp_path / "a" / "b"), "vol")


def test_usage_errors_exit_2(location: str) -> None:
    create(location)
    fails("lock", location, "vol", code=2)  # --message is required
    fails("log", location, code=2)
    fails("nosuchcommand", code=2)
    fails("demo", location, "--size", "2", code=2)


def test_arrays(location: str) -> None:
    root = create(location)
    with DicedStore(location) as store:
        repo = store.open_repo("vol")
        image = repo.create_array("image", diced.ArrayDtype.uint8, shape=(100, 80, 60))
        image[70:90, :10, :] = 7
        repo.create_array("labels", diced.ArrayDtype.uint64, islabel3D=True)
        repo.create_array("table", np.float32, shape=(10, 10), chunks=(5, 5))
    assert table_rows(ok("arrays", location, "vol", "--version", root).stdout) == [
        ["image", "uint8", "100x80x60", "64x64x64", "64:100,0:64,0:60", ""],
        ["labels", "uint64", "unbounded", "64x64x64", "0:0,0:0,0:0", "yes"],
        ["table", "float32", "10x10", "5x5", "0:0,0:0", ""],
    ]


def test_put_get_binary_through_stdin_and_stdout(location: str, tmp_path: Path) -> None:
    create(location)
    assert ok("put", location, "vol", "blob.bin", "-", input=BINARY).stdout == ""
    assert ok("get", location, "vol", "blob.bin").stdout_bytes == BINARY
    source = tmp_path / "notes.txt"
    source.write_text("some notes\n")
    ok("put", location, "vol", "notes.txt", str(source))
    target = tmp_path / "copy.bin"
    ok("get", location, "vol", "blob.bin", "-o", str(target))
    assert target.read_bytes() == BINARY
    assert ok("files", location, "vol").stdout.splitlines() == ["blob.bin", "notes.txt"]


def test_files_and_writes_across_versions(location: str) -> None:
    root = create(location)
    ok("put", location, "vol", "a.txt", "-", input=b"first")
    ok("lock", location, "vol", "-m", "one")
    assert "is locked" in fails("put", location, "vol", "a.txt", "-", input=b"second")
    assert "is locked" in fails("put", location, "vol", "b.txt", "-", "--version", root,
                                input=b"x")
    child = ok("branch", location, "vol", "-m", "next").stdout.strip()
    ok("put", location, "vol", "a.txt", "-", "--version", child[:8], input=b"second")
    assert ok("get", location, "vol", "a.txt", "--version", root).stdout_bytes == b"first"
    assert ok("get", location, "vol", "a.txt").stdout_bytes == b"second"
    assert ok("files", location, "vol", "--version", root).stdout == "a.txt\n"


def test_get_missing_file_writes_nothing(location: str, tmp_path: Path) -> None:
    create(location)
    target = tmp_path / "out.bin"
    assert "no file named 'nope'" in fails("get", location, "vol", "nope", "-o", str(target))
    assert not target.exists()


def _script() -> str:
    script = Path(sysconfig.get_path("scripts")) / "diced"
    assert script.exists(), "the diced console script is not installed: pip install -e ."
    return str(script)


def test_installed_console_script(location: str) -> None:
    def diced_cli(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([_script(), *args], input=data, capture_output=True,
                              timeout=120, check=False)

    created = diced_cli("create", location, "vol")
    assert created.returncode == 0, created.stderr
    assert diced_cli("put", location, "vol", "blob.bin", "-", data=BINARY).returncode == 0
    got = diced_cli("get", location, "vol", "blob.bin")
    assert got.returncode == 0 and got.stdout == BINARY
    missing = diced_cli("log", location, "nope")
    assert missing.returncode == 1
    assert missing.stderr == b"error: no repo named 'nope'; list_repos() shows the repos\n"
    assert missing.stdout == b""
    assert diced_cli("lock", location).returncode == 2
