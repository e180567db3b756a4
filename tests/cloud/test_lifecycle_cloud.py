"""The storage lifecycle on both cloud emulators: copies to and from a bucket (the checks
of ``tests/_sync_checks.py``), garbage collection racing writers and lockers, and the
collector's trash."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

import _lifecycle_workers as lw
import _sync_checks as checks
import _workers as w

from diced import DicedStore
from diced.backends import ObjectStore
from diced.backends._forwarding import ForwardingObjectStore
from diced.lifecycle.gc import collect_garbage


def test_clone_edit_push_to_a_bucket_moves_only_new_objects(tmp_path: Path,
                                                            cloud_location: str) -> None:
    checks.clone_edit_push(str(tmp_path / "src"), cloud_location)


def test_clone_one_old_version_from_a_bucket(tmp_path: Path, cloud_location: str) -> None:
    checks.clone_one_old_version(cloud_location, str(tmp_path / "dst"))


def test_a_killed_copy_to_a_bucket_resumes(tmp_path: Path, cloud_location: str) -> None:
    checks.killed_copy_resumes(str(tmp_path / "src"),
                               [f"{cloud_location}-dst{i}" for i in range(2)],
                               str(tmp_path / "scratch"))


class _WriterBetweenCopyAndDelete(ForwardingObjectStore):
    """Lets another store write sixteen 42s right before the collector deletes a blob."""

    def __init__(self, inner: ObjectStore, location: str, node: str) -> None:
        super().__init__(inner)
        self.pending = (location, node)

    def delete(self, key: str) -> None:
        if "/blobs/" in key and self.pending is not None:
            (location, node), self.pending = self.pending, None
            with DicedStore(location) as other:
                other.open_repo(uuid=node).get_array("a")[16:32] = 42
        self.inner.delete(key)


def test_gc_of_a_bucket_puts_back_a_blob_reused_while_it_moved(cloud_location: str) -> None:
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("a", np.uint8, shape=(32,), chunks=(16,))
        arr[0:16] = 42
        arr[0:16] = 1
        racing = _WriterBetweenCopyAndDelete(store.backend, cloud_location, repo.uuid)
        # grace 0: the run settles its own trash at once, finding the new reference.
        report = collect_garbage(racing, grace=0, progress=False)
        assert report.trashed.objects == 1 and report.restored.objects == 1
        assert store.open_repo(uuid=repo.uuid).get_array("a")[...].tolist() == \
            [1] * 16 + [42] * 16
        usage = store.storage_report()
        assert usage.unreferenced.objects == 0 and usage.trash.objects == 0
        assert store.verify(progress=False).ok


def test_gc_racing_writers_and_lockers_on_a_bucket_loses_nothing(cloud_location: str) -> None:
    writers, seconds = 2, 12.0
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint16, shape=lw.SHAPE, chunks=lw.CHUNKS)[...] = 1
        repo.lock_node("base")
        nodes = [repo.create_branch(f"writer {p}", f"w{p}") for p in range(writers)]
    barrier = w.CTX.Barrier(writers)
    outcomes = w.run_processes(
        [("_lifecycle_workers:palette_writer",
          (cloud_location, nodes[p], p, seconds, 25, barrier)) for p in range(writers)]
        + [("_lifecycle_workers:gc_loop", (cloud_location, 4.0, seconds + 2))], timeout=400)
    for o in outcomes:
        assert o.ok, f"process {o.index} failed: {o.error}: {o.message}"
    runs = outcomes[writers].value
    print(f"{len(runs)} gc runs moved {sum(r['trashed'] for r in runs)} objects to the trash, "
          f"deleted {sum(r['deleted'] for r in runs)}")
    with DicedStore(cloud_location) as store:
        for outcome in outcomes[:writers]:
            for uuid, array_digest, _ in [*outcome.value["locked"], outcome.value["open"]]:
                got = store.open_repo(uuid=uuid).get_array("a")[...]
                assert lw.digest_of(got) == array_digest, uuid
        report = store.verify(progress=False)
        assert report.ok, [d.lines(report.repos) for d in report.damage]
