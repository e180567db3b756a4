"""A process killed with SIGKILL while merging leaves the merged versions untouched, and
either no merge node or a complete, open one — never a half-merged or locked node.

Each trial copies a prepared store (a locked base, two locked branches with disjoint
voxel edits in shared chunks, a new array and a file on one side) and runs a merge writer
(``tests/_workers.py merge-writer``) that is killed right after its n-th backend write or
at a random instant. Then, in a fresh :class:`~diced.DicedStore`, without any repair:

* every object that existed before is byte-identical;
* the DAG holds the original nodes, with the same states, plus at most the merge node,
  which is open, has both branches as parents and reads exactly the expected merge;
* the merge can then be run (again) to completion, or is refused because it is done.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diced import AlreadyExistsError, DicedStore

sys.path.insert(0, str(Path(__file__).parent))

from test_crash_safety import _snapshot

WORKERS = str(Path(__file__).parent / "_workers.py")
SHAPE, CHUNKS = (64, 64, 64), (16, 16, 16)


def _expected() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The base volume, and the left and right volumes (disjoint voxel edits)."""
    rng = np.random.default_rng(3)
    base = rng.integers(1, 2**31, SHAPE, dtype=np.uint32)
    left, right = base.copy(), base.copy()
    left[:, :, 0:40:2] = 7       # every other plane of many chunks
    right[:, :, 1:41:2] = 8      # the planes between: the same chunks, other voxels
    right[48:, 48:, 48:] = 9     # and chunks only the right side changes
    return base, left, right


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("merge-crash") / "store"
    base, left, right = _expected()
    with DicedStore(str(path)) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint32, shape=SHAPE, chunks=CHUNKS)[...] = base
        repo.lock_node("base")
        root = repo.uuid
        branches = []
        for name, data in (("left", left), ("right", right)):
            repo.change_version(root)
            repo.change_version(repo.create_branch(name, name))
            repo.get_array("a")[...] = data
            if name == "right":
                repo.create_array("b", np.uint8, shape=(40, 40), chunks=(8, 8))[...] = 5
                repo.upload_filedata("right.txt", b"from the right")
            repo.lock_node(name)
            branches.append(repo.uuid)
    return path, branches[0], branches[1]


def _merge(path: Path, left: str, right: str, kill_after: int | None,
           kill_delay: float | None) -> tuple[list[str], int]:
    proc = subprocess.Popen(
        [sys.executable, WORKERS, "merge-writer",
         json.dumps({"path": str(path), "repo": "r", "versions": [left, right],
                     "kill_after": kill_after})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode().strip()
    assert first == "merging", proc.stderr.read().decode() if proc.stderr else first
    if kill_delay is not None:
        time.sleep(kill_delay)
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    return out.decode().splitlines(), proc.returncode


def _check(path: Path, before: dict[str, str], left: str, right: str) -> str | None:
    """Check the store after a merge writer died; return the merge node, if it exists."""
    now = _snapshot(str(path))
    changed = [k for k, digest in before.items() if now.get(k) != digest]
    assert not changed, f"objects changed or vanished: {changed[:5]}"
    base, expected_left, expected_right = _expected()
    expected = np.where(expected_right != base, expected_right, expected_left)
    with DicedStore(str(path)) as store:
        repo = store.open_repo("r")
        nodes = {n.uuid: n for n in repo.list_nodes()}
        new = [u for u, n in nodes.items() if n.parents == (left, right)]
        assert len(nodes) == 3 + len(new) and len(new) <= 1
        assert all(n.locked for u, n in nodes.items() if u not in new)
        if not new:
            return None
        merged = store.open_repo("r", version=new[0])
        assert merged.state == "open", "a merge never locks"
        assert np.array_equal(merged.get_array("a")[...], expected)
        assert np.array_equal(merged.get_array("b")[...], np.full((40, 40), 5, np.uint8))
        assert merged.download_filedata("right.txt") == b"from the right"
        return new[0]


def _trial(prepared: tuple[Path, str, str], where: Path, kill_after: int | None,
           kill_delay: float | None) -> str:
    source, left, right = prepared
    shutil.copytree(source, where)
    before = _snapshot(str(where))
    _, code = _merge(where, left, right, kill_after, kill_delay)
    merged = _check(where, before, left, right)
    with DicedStore(str(where)) as store:
        repo = store.open_repo("r")
        if merged is None:
            assert code == -signal.SIGKILL
            done = repo.merge([left, right], "after the crash", name="merged")
            assert _check(where, _snapshot(str(where)), left, right) == done
            return "no node"
        with pytest.raises(AlreadyExistsError):
            repo.merge([left, right], "again", name="merged")
        return "complete node"


@pytest.fixture
def rng() -> Iterator[random.Random]:
    seed = random.randrange(2**32)
    print(f"merge crash seed {seed}")
    yield random.Random(seed)


def test_merge_killed_at_any_write_leaves_no_node_or_a_complete_one(
        prepared: tuple[Path, str, str], tmp_path: Path, rng: random.Random) -> None:
    lines, code = _merge(_copy(prepared, tmp_path / "calibrate"), prepared[1], prepared[2],
                         None, None)
    assert code == 0 and lines[-1].startswith("merged ")
    mutations = int(lines[-1].split()[2])
    assert mutations > 50, "the merge writes pointers, entries, blobs and a claim"
    kill_points = sorted({1, 2, mutations - 1, mutations, *rng.sample(range(3, mutations), 4)})
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(
            lambda n: _trial(prepared, tmp_path / f"after-{n}", n, None), kill_points))
    assert outcomes[0] == "no node" and outcomes[-1] == "complete node"


def test_merge_killed_at_a_random_instant(prepared: tuple[Path, str, str], tmp_path: Path,
                                          rng: random.Random) -> None:
    delays = [rng.uniform(0, 1.5) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(
            lambda i: _trial(prepared, tmp_path / f"instant-{i}", None, delays[i]),
            range(len(delays))))
    assert set(outcomes) <= {"no node", "complete node"}


def _copy(prepared: tuple[Path, str, str], where: Path) -> Path:
    shutil.copytree(prepared[0], where)
    return where
