"""The integrity check: it finds every kind of damage, says what each affects, and
never writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from diced import DicedStore, NotFoundError
from diced.backends import LocalObjectStore
from diced.lifecycle.verify import Damage, verify_store
from diced.progress import StepProgress
from diced.testing.counting import CountingObjectStore
from diced.versioning import keys

WRITES = ("put", "put_if_absent", "compare_and_swap", "put_if_match", "delete")


@pytest.fixture
def built(tmp_path: Path) -> tuple[DicedStore, dict[str, str]]:
    """Locked v1 (array a, 2×2×2 chunks, and a file), locked v2 changing chunk (0, 0, 0),
    and an open v3 writing chunk (1, 1, 1)."""
    store = DicedStore(str(tmp_path / "s"))
    repo = store.create_repo("r")
    arr = repo.create_array("a", np.uint16, shape=(32, 32, 32), chunks=(16, 16, 16))
    arr[...] = np.random.default_rng(3).integers(0, 900, (32, 32, 32), dtype=np.uint16)
    repo.upload_filedata("notes.txt", b"some notes")
    repo.lock_node("v1")
    names = {"v1": repo.uuid}
    repo.change_version(repo.create_branch("v2"))
    repo.get_array("a")[0:16, 0:16, 0:16] = 5
    repo.lock_node("v2")
    names["v2"] = repo.uuid
    repo.change_version(repo.create_branch("v3"))
    repo.get_array("a")[16:32, 16:32, 16:32] = 6
    names["v3"] = repo.uuid
    return store, names


def chunk_blob(store: DicedStore, version: str, coords: tuple[int, ...]) -> str:
    repo = store.open_repo(uuid=version)
    return keys.blob(repo.repo_uuid, repo.get_array("a").chunk_digests()[coords])


def places(damage: Damage) -> set[tuple[str | None, str | None, object]]:
    return {(r.node, r.array, r.coords) for r in damage.affected}


def test_a_sound_store_passes_and_nothing_is_written(built: tuple[DicedStore, dict[str, str]]
                                                     ) -> None:
    store, _ = built
    counting = CountingObjectStore(LocalObjectStore(str(store.location)))
    report = verify_store(counting, progress=False)
    assert report.ok and report.damage == () and report.in_trash == ()
    # header, name, repo, claims, hint, 3 records, 2 manifests, pages, 9 distinct blobs...
    assert report.checked.objects >= 20
    assert report.checked.bytes > 0
    assert not any(counting.calls[op] for op in WRITES)


def test_damaged_blobs_are_reported_with_every_version_and_chunk(
        built: tuple[DicedStore, dict[str, str]]) -> None:
    store, v = built
    shared = chunk_blob(store, v["v1"], (1, 0, 0))  # held by v1, v2 and (through v2) v3
    only_v1 = chunk_blob(store, v["v1"], (0, 0, 0))  # v2 rewrote that chunk
    store.backend.delete(shared)
    store.backend.put(only_v1, b"flipped bits")
    counting = CountingObjectStore(store.backend)
    report = verify_store(counting, progress=False)
    assert not any(counting.calls[op] for op in WRITES)
    assert not report.ok
    found = {d.key: d for d in report.damage}
    assert set(found) == {shared, only_v1}
    assert found[shared].detail == "missing"
    assert places(found[shared]) == {(v["v1"], "a", (1, 0, 0)), (v["v2"], "a", (1, 0, 0)),
                                     (v["v3"], "a", (1, 0, 0))}
    assert found[only_v1].detail.startswith("corrupt")
    assert places(found[only_v1]) == {(v["v1"], "a", (0, 0, 0))}
    lines = found[shared].lines(report.repos)
    assert lines[0].startswith(f"blob {shared}: missing")
    assert any("repo 'r'" in line and "chunk (1, 0, 0)" in line for line in lines[1:])


def test_pages_manifests_records_pointers_and_files(built: tuple[DicedStore, dict[str, str]]
                                                    ) -> None:
    store, v = built
    repo = store.open_repo(uuid=v["v2"])
    r = repo.repo_uuid
    manifest_v1 = keys.manifest(r, repo.node_record(v["v1"]).manifest or "")
    store.backend.put(manifest_v1, b"{}")
    v3_pointer = next(k for k in store.backend.list_prefix(keys.open_node_prefix(r, v["v3"]))
                      if "/chunks/" in k)
    store.backend.put(v3_pointer, b"\x01\x02")
    report = verify_store(store.backend, progress=False)
    found = {d.key: d for d in report.damage}
    assert found[manifest_v1].detail.startswith("corrupt")
    assert {ref.node for ref in found[manifest_v1].affected} == {v["v1"]}
    assert found[v3_pointer].detail.startswith("corrupt (2 bytes")
    assert places(found[v3_pointer]) == {(v["v3"], "a", (1, 1, 1))}

    store.backend.put(manifest_v1, b"")  # still damaged; now break v2's tree and record
    manifest_v2 = repo.node_record(v["v2"]).manifest or ""
    tree = json.loads(store.backend.get(keys.manifest(r, manifest_v2)) or b"{}")
    page = keys.page(r, tree["arrays"]["a"]["root"])
    store.backend.delete(page)
    report = verify_store(store.backend, repo="r", progress=False)
    found = {d.key: d for d in report.damage}
    assert found[page].detail == "missing"
    assert {(ref.node, ref.box) for ref in found[page].affected} >= {
        (v["v2"], ((0, 8), (0, 8), (0, 8)))}
    assert report.repos and not report.ok


def test_one_version_only(built: tuple[DicedStore, dict[str, str]]) -> None:
    store, v = built
    store.backend.delete(chunk_blob(store, v["v1"], (0, 0, 0)))  # only v1 uses it
    assert verify_store(store.backend, "r", v["v2"], progress=False).ok
    assert verify_store(store.backend, "r", v["v3"], progress=False).ok  # reads v2's tree
    assert not verify_store(store.backend, None, v["v1"][:10], progress=False).ok
    with pytest.raises(NotFoundError):
        verify_store(store.backend, "nope", progress=False)


def test_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    with StepProgress(True, Console(file=out, force_terminal=True, width=100)) as bar:
        bar.start("fsck: checking objects", 0)
        bar.grow(4)
        bar.advance(4)
    assert "fsck: checking objects" in out.getvalue() and "4/4" in out.getvalue()
    quiet = io.StringIO()
    with StepProgress(False, Console(file=quiet, force_terminal=True)) as bar:
        bar.start("hidden", 3)
        bar.advance()
    assert quiet.getvalue() == ""
