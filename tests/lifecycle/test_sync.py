"""Copies between stores on local disk (the same checks run on both cloud emulators in
``tests/cloud/test_lifecycle_cloud.py``), and what only a local test needs: diverged
histories, conflicts, tags, memory stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import _sync_checks as checks

from diced import DicedStore, InvalidInputError, NotFoundError
from diced.versioning import keys


def test_clone_edit_push_moves_only_new_objects(tmp_path: Path) -> None:
    checks.clone_edit_push(str(tmp_path / "src"), str(tmp_path / "dst"))


def test_clone_one_old_version_brings_only_its_objects(tmp_path: Path) -> None:
    checks.clone_one_old_version(str(tmp_path / "src"), str(tmp_path / "dst"))


def test_a_killed_copy_leaves_a_consistent_store_and_resumes(tmp_path: Path) -> None:
    checks.killed_copy_resumes(str(tmp_path / "src"),
                               [str(tmp_path / f"dst{i}") for i in range(4)],
                               str(tmp_path / "scratch"))


def test_diverged_histories_add_nodes_and_overwrite_nothing(tmp_path: Path) -> None:
    source = checks.build_source(str(tmp_path / "src"))
    src, dst = DicedStore(str(tmp_path / "src")), DicedStore(str(tmp_path / "dst"))
    src.sync_to(dst, progress=False)
    # Both stores continue master from v2: each gets a different child in the same slot.
    ours = src.open_repo(uuid=source.leaf)
    ours.lock_node("source's v3")
    theirs = dst.open_repo(uuid=source.v2)
    theirs.change_version(theirs.create_branch("destination's v3"))
    theirs.get_array("img")[0:8] = 77
    theirs.lock_node("destination's v3")
    before = {k: dst.backend.get(k) for k in dst.backend.list_prefix("")}

    report = src.sync_to(dst, progress=False)
    assert report.ok and report.repos[0].grafted == (ours.uuid,)
    after = {k: dst.backend.get(k) for k in dst.backend.list_prefix("")}
    assert all(after[k] == v for k, v in before.items()
               if not k.startswith(keys.branch_heads_prefix(source.repo)))
    repo = dst.open_repo("em")
    assert repo.uuid == theirs.uuid  # the destination's master is unchanged
    nodes = {n.uuid: n for n in repo.list_nodes()}
    assert set(nodes[source.v2].children) == {ours.uuid, theirs.uuid}
    checks.same_versions(str(tmp_path / "src"), str(tmp_path / "dst"), [ours.uuid])
    assert src.sync_to(dst, progress=False).written.objects == 0
    # The other way round, the destination's node is grafted at the source.
    back = dst.sync_to(src, progress=False)
    assert back.repos[0].grafted == (theirs.uuid,)
    assert src.open_repo("em").uuid == ours.uuid
    assert dst.verify(progress=False).ok and src.verify(progress=False).ok


def test_conflicts_and_selections(tmp_path: Path) -> None:
    source = checks.build_source(str(tmp_path / "src"))
    src, dst = DicedStore(str(tmp_path / "src")), DicedStore(str(tmp_path / "dst"))
    dst.create_repo("em", "another repo of the same name")
    report = src.sync_to(dst, progress=False)
    assert not report.ok and "another repo named 'em'" in report.repos[0].conflicts[0]
    assert report.written.objects == 0
    with pytest.raises(NotFoundError, match="no repo named 'nope'"):
        src.sync_to(dst, repos=["nope"], progress=False)
    with pytest.raises(InvalidInputError, match="open"):
        src.sync_to(str(tmp_path / "other"), versions=[source.leaf], progress=False)
    # A tag naming a version that was not copied stays behind.
    alone = src.sync_to(str(tmp_path / "alt"), versions=[":alt"], repos=["em"],
                        progress=False)
    assert alone.repos[0].copied == (source.v1, source.alt)
    assert json.loads(DicedStore(str(tmp_path / "alt")).backend.get(
        keys.tags_prefix(source.repo) + "paper") or b"{}")["uuid"] == source.v1
    empty = src.create_repo("empty")
    assert empty.locked is False
    skipped = src.sync_to(str(tmp_path / "alt"), repos=["empty"], progress=False)
    assert skipped.ok and skipped.repos[0].copied == ()


def test_between_memory_and_local_stores(tmp_path: Path) -> None:
    with DicedStore("memory://sync-test-src") as memory:
        repo = memory.create_repo("m")
        repo.create_array("x", np.uint8, shape=(100,), chunks=(10,))[...] = np.arange(100)
        repo.lock_node("v")
        memory.sync_to(str(tmp_path / "local"), progress=False)
        with DicedStore(str(tmp_path / "local")) as local:
            assert local.open_repo("m").get_array("x")[...].tolist() == list(range(100))
            local.sync_to("memory://sync-test-back", progress=False)
        with DicedStore("memory://sync-test-back") as back:
            assert back.open_repo("m").uuid == repo.uuid


def test_a_torn_copy_at_the_destination_is_written_again(tmp_path: Path) -> None:
    checks.build_source(str(tmp_path / "src"))
    src, dst = DicedStore(str(tmp_path / "src")), DicedStore(str(tmp_path / "dst"))
    src.sync_to(dst, progress=False)
    blob = next(k for k in dst.backend.list_prefix("repos/") if "/blobs/" in k)
    path = tmp_path / "dst" / blob
    whole = path.read_bytes()
    path.write_bytes(whole[:10])  # as a local writer killed while writing it in place
    assert not dst.verify(progress=False).ok
    again = src.sync_to(dst, progress=False)
    assert again.written.objects == 1 and path.read_bytes() == whole
    assert dst.verify(progress=False).ok
