"""``diced tag``, ``tags``, ``diff``, ``merge``, ``log --graph``, ``blame`` and ``--as-of``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from diced import DicedStore
from diced.cli import main

UUID = re.compile(r"^[0-9a-f]{32}$")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def fails(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A store whose repo ``vol`` has branches ``left`` and ``right`` that both change
    voxel (0, 0, 0), and a time between the base and the branches."""
    location = str(tmp_path / "store")
    with DicedStore(location) as opened:
        repo = opened.create_repo("vol")
        repo.create_array("img", np.uint8, shape=(16, 16, 16), chunks=(8, 8, 8))[...] = 1
        repo.lock_node("base")
        base = repo.uuid
        time.sleep(0.01)
        moment = datetime.now(UTC).isoformat()
        time.sleep(0.01)
        versions = {"base": base, "moment": moment}
        for name, value, where in (("left", 2, (0, 0, 0)), ("right", 3, (0, 0, 0))):
            repo.change_version(base)
            repo.change_version(repo.create_branch(name, name))
            repo.get_array("img")[where] = value
            repo.get_array("img")[15, 15, 15] = 9 if name == "right" else 1
            repo.lock_node(f"{name} edits")
            versions[name] = repo.uuid
    return location, versions


def test_tag_tags_and_tag_references(store: tuple[str, dict[str, str]]) -> None:
    location, v = store
    assert ok("tag", location, "vol", "v1", "--version", v["base"], "-m", "release") \
        == f"tagged {v['base']} as v1\n"
    listed = ok("tags", location, "vol")
    assert "v1" in listed and v["base"] in listed and "release" in listed
    assert "tag:v1" in ok("log", location, "vol", "--graph", "--version", ":left")
    arrays = ok("arrays", location, "vol", "--version", "tag:v1")
    assert "img" in arrays
    assert "never move" in fails("tag", location, "vol", "v1", "--version", ":left")
    child = ok("branch", location, "vol", "--version", ":left", "-m", "open").strip()
    assert "is open" in fails("tag", location, "vol", "v2", "--version", child)


def test_diff_lists_chunks_and_voxels(store: tuple[str, dict[str, str]]) -> None:
    location, v = store
    out = ok("diff", location, "vol", v["base"], ":right", "--voxels").splitlines()
    assert out[0] == "array img (modified): 0 chunks added, 0 removed, 2 modified"
    assert out[1:] == ["  ~ 0,0,0  1 voxels in 0:1,0:1,0:1",
                       "  ~ 1,1,1  1 voxels in 15:16,15:16,15:16"]
    assert ok("diff", location, "vol", ":left", ":left") == "no differences\n"


def test_merge_conflicts_and_priority(store: tuple[str, dict[str, str]]) -> None:
    location, v = store
    error = fails("merge", location, "vol", ":left", ":right", "-m", "merge")
    assert "1 conflict" in error and "chunk (0, 0, 0)" in error and "wrote nothing" in error
    merged = ok("merge", location, "vol", ":left", ":right", "-m", "merge",
                "--on-conflict", "theirs", "--quiet").strip()
    assert UUID.match(merged)
    with DicedStore(location) as opened:
        repo = opened.open_repo("vol", version=merged)
        assert repo.get_array("img")[0, 0, 0] == 3 and repo.get_array("img")[15, 15, 15] == 9
        assert repo.node_record().parents == (v["left"], v["right"])
        assert repo.node_record().branch == "left"
    graph = ok("log", location, "vol", "--graph", "--version", merged).splitlines()
    assert graph[0].startswith("* ") and merged[:8] in graph[0]
    assert graph[1].replace(" ", "") == "|\\"
    assert any(line.startswith("| * ") and v["right"][:8] in line for line in graph)
    assert any(line.replace(" ", "") == "|/" for line in graph)
    assert graph[-1].startswith("* ") and v["base"][:8] in graph[-1]
    assert "two or more" in fails("merge", location, "vol", ":left", "-m", "one")


def test_blame_and_as_of(store: tuple[str, dict[str, str]]) -> None:
    location, v = store
    rows = [line for line in ok("blame", location, "vol", "img", "15,15,15", "--version",
                                ":right").splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == [v["right"], v["base"]]
    assert "not inside" in fails("blame", location, "vol", "img", "16,0,0")
    log = ok("log", location, "vol", "--as-of", v["moment"])
    assert v["base"] in log
    assert "locked at or before" in fails("log", location, "vol", "--as-of", v["moment"],
                                          "--version", ":left")
    assert v["left"] in ok("log", location, "vol", "--as-of", "2999-01-01", "--version",
                           ":left")
    assert ":BRANCH" in fails("log", location, "vol", "--as-of", "2999-01-01", "--version",
                              v["left"])
