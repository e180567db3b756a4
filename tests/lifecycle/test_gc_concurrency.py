"""Garbage collection against real processes: writers and lockers racing a collector lose
nothing, and a collector killed with SIGKILL leaves a consistent store.

Every write a writer process saw return is checked afterwards through the writer's own
model (a digest per locked version, and for its open leaf), never through a read made
while the race ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import _lifecycle_workers as lw
import _workers as w

from diced import ConflictError, DicedStore
from diced.versioning import keys

WRITERS = 3
#: Twice this exceeds every writer's step (a chunk write: milliseconds; a lock of 64
#: chunks: well under a second, even on a loaded 2-core machine).
GRACE = 6.0


def age_all(root: Path, seconds: float = 2 * 86400) -> None:
    then = time.time() - seconds
    for dirpath, _, names in os.walk(root):
        if ".diced-local" not in dirpath:
            for name in names:
                os.utime(os.path.join(dirpath, name), (then, then))


def check(location: str, outcomes: list[dict[str, object]]) -> int:
    """Every locked version and every open leaf reads what its writer wrote."""
    checked = 0
    with DicedStore(location) as store:
        for outcome in outcomes:
            versions = [*outcome["locked"], outcome["open"]]  # type: ignore[misc]
            for uuid, array_digest, file_digest in versions:
                repo = store.open_repo(uuid=uuid)
                assert lw.digest_of(repo.get_array("a")[...]) == array_digest, uuid
                notes = repo.download_filedata("notes") if "notes" in repo.list_files() \
                    else b""
                assert hashlib.sha256(notes).hexdigest() == file_digest, uuid
                checked += 1
    return checked


def test_gc_racing_writers_and_lockers_loses_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / "s")
    with DicedStore(location) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("a", np.uint16, shape=lw.SHAPE, chunks=lw.CHUNKS)
        arr[...] = 1
        repo.lock_node("base")
        nodes = [repo.create_branch(f"writer {p}", f"w{p}") for p in range(WRITERS)]
    barrier = w.CTX.Barrier(WRITERS)
    seconds = 20.0
    outcomes = w.run_processes(
        [("_lifecycle_workers:palette_writer", (location, nodes[p], p, seconds, 25, barrier))
         for p in range(WRITERS)]
        + [("_lifecycle_workers:gc_loop", (location, GRACE, seconds + 2))], timeout=300)
    for o in outcomes:
        assert o.ok, f"process {o.index} failed: {o.error}: {o.message}"
    written, runs = [o.value for o in outcomes[:WRITERS]], outcomes[WRITERS].value
    moved = sum(r["trashed"] for r in runs)
    print(f"{sum(x['writes'] for x in written)} writes, {sum(len(x['locked']) for x in written)}"
          f" locks; {len(runs)} gc runs moved {moved} objects to the trash, deleted "
          f"{sum(r['deleted'] for r in runs)}, restored {sum(r['restored'] for r in runs)}")
    assert moved > 0, "the collector never had anything to do: the race was not exercised"
    assert check(location, written) == sum(len(x["locked"]) + 1 for x in written)
    with DicedStore(location) as store:
        report = store.verify(progress=False)
        assert report.ok, [d.lines(report.repos) for d in report.damage]
        # Once everything is old, two runs leave exactly what the versions need.
        age_all(tmp_path / "s")
        store.gc(GRACE, progress=False)
        age_all(tmp_path / "s")
        store.gc(GRACE, progress=False)
        usage = store.storage_report()
        assert usage.unreferenced.objects == 0 and usage.trash.objects == 0
        assert store.verify(progress=False).ok
    check(location, written)


def _garbage_store(root: Path) -> dict[str, bytes]:
    """A store with old garbage of every kind; each version's array bytes."""
    with DicedStore(str(root)) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("a", np.uint16, shape=(64, 64, 64), chunks=(16, 16, 16))
        arr[...] = np.random.default_rng(2).integers(0, 60000, (64, 64, 64), dtype=np.uint16)
        repo.upload_filedata("f", b"file")
        repo.lock_node("v1")
        versions = {repo.uuid: repo.get_array("a")[...].tobytes()}
        repo.change_version(repo.create_branch("v2"))
        for value in (5, 6, 7):  # superseded writes
            repo.get_array("a")[0:32] = value
        repo.lock_node("v2")
        v2 = repo.uuid
        versions[v2] = repo.get_array("a")[...].tobytes()
        repo.change_version(repo.create_branch("side", "side"))
        repo.get_array("a")[...] = 9
        repo.lock_node("side")
        repo.delete_branch("side")
        repo.change_version(v2)
        repo.change_version(repo.create_branch("v3"))
        repo.get_array("a")[32:48] = 11  # an open leaf
        versions[repo.uuid] = repo.get_array("a")[...].tobytes()
        store.create_repo("gone").upload_filedata("x", b"gone")
        store.delete_repo("gone")
    age_all(root)
    return versions


def _reads(location: str, versions: dict[str, bytes]) -> None:
    with DicedStore(location) as store:
        for uuid, data in versions.items():
            assert store.open_repo(uuid=uuid).get_array("a")[...].tobytes() == data
        report = store.verify(progress=False)
        assert report.ok, [d.lines(report.repos) for d in report.damage]


@pytest.mark.parametrize("kill_after", [2, 6, 15, 40, 80])
def test_a_collector_killed_with_sigkill_leaves_a_consistent_store(tmp_path: Path,
                                                                   kill_after: int) -> None:
    root = tmp_path / "s"
    versions = _garbage_store(root)
    proc = subprocess.run(
        [sys.executable, lw.__file__, "gc",
         json.dumps({"path": str(root), "grace": 10.0, "kill_after": kill_after})],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])
    _reads(str(root), versions)
    with DicedStore(str(root)) as store:
        with pytest.raises(ConflictError, match="until its lease expires"):
            store.gc(10.0, progress=False)
        if kill_after != 15:
            return
        # Once the killed collector's lease has expired, a new one finishes the work.
        lease = json.loads(store.backend.get(keys.GC_LEASE) or b"{}")
        time.sleep(max(0.0, lease["expires"] - time.time()) + 0.1)
        store.gc(10.0, progress=False)
        age_all(root)
        store.gc(10.0, progress=False)
        usage = store.storage_report()
        assert usage.unreferenced.objects == 0 and usage.trash.objects == 0
    _reads(str(root), versions)
    shutil.rmtree(root)
