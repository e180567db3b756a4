"""Checks of copies between stores, run on local disk (``tests/lifecycle/test_sync.py``)
and on both cloud emulators (``tests/cloud/test_lifecycle_cloud.py``).

Every check computes, independently of the copy, which keys the destination must hold
(from a walk of the source) and compares them with a listing of the destination.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diced import DicedStore
from diced.backends import ObjectStore
from diced.lifecycle.sync import copy_versions
from diced.testing.counting import CountingObjectStore
from diced.versioning import keys
from diced.versioning.graph import VersionGraph
from diced.versioning.reachability import Kind, Walker

WORKERS = str(Path(__file__).parent / "_lifecycle_workers.py")
SHAPE = (64, 64, 96)
CHUNKS = (32, 32, 32)
MUTATIONS = ("put", "put_if_absent", "compare_and_swap", "put_if_match", "delete")


@dataclass(frozen=True)
class Source:
    """Repo ``em``: v1 → v2 (locked, master), alt (locked, branch ``alt`` from v1), an
    open leaf on master, and a tag naming v1."""

    location: str
    repo: str
    v1: str
    v2: str
    alt: str
    leaf: str


def build_source(location: str) -> Source:
    with DicedStore(location) as store:
        repo = store.create_repo("em", "copied around")
        arr = repo.create_array("img", np.uint16, shape=SHAPE, chunks=CHUNKS)
        arr[...] = np.random.default_rng(5).integers(0, 3000, SHAPE, dtype=np.uint16)
        repo.upload_filedata("README.md", b"# em")
        repo.lock_node("v1")
        v1 = repo.uuid
        alt = repo.create_branch("alt", "alt")
        repo.change_version(repo.create_branch("v2"))
        repo.get_array("img")[0:32, 0:32, 0:32] = 1
        repo.lock_node("v2")
        v2 = repo.uuid
        leaf = repo.create_branch("work in progress")
        repo.change_version(leaf)
        repo.get_array("img")[32:64] = 2
        repo.change_version(alt)
        repo.get_array("img")[:, :, 64:96] = 3
        repo.lock_node("alt")
        store.backend.put(keys.tags_prefix(repo.repo_uuid) + "paper",
                          json.dumps({"uuid": v1, "name": "paper"}).encode())
        return Source(location, repo.repo_uuid, v1, v2, alt, leaf)


def expected_keys(src: ObjectStore, repo: str, nodes: set[str]) -> set[str]:
    """What a copy of ``nodes`` (closed under parents) of ``repo`` holds at the destination."""
    graph = VersionGraph(src, repo)
    dag = graph.nodes()
    found = {keys.STORE_HEADER, keys.repo_name("em"), keys.repo_record(repo)}
    with ThreadPoolExecutor(4) as pool:
        walker = Walker(src, pool, strict=True)
        for uuid in nodes:
            record = dag[uuid].record
            parent = dag[record.parents[0]].record if record.parents else None
            found |= {keys.node_record(repo, uuid), graph.claim_key(record, parent)}
            found |= {r.key for r in walker.node_refs(record) if r.kind in Kind.CONTENT}
    found |= {keys.branch_head(repo, dag[u].record.branch) for u in nodes}
    for key in src.list_prefix(keys.tags_prefix(repo)):
        if json.loads(src.get(key) or b"{}")["uuid"] in nodes:
            found.add(key)
    return found


def listing(store: ObjectStore) -> set[str]:
    return set(store.list_prefix(""))


def same_versions(src: str, dst: str, versions: list[str]) -> None:
    """Every version reads the same arrays and files at both stores."""
    with DicedStore(src) as a, DicedStore(dst) as b:
        for uuid in versions:
            left, right = a.open_repo(uuid=uuid), b.open_repo(uuid=uuid)
            assert right.node_record() == left.node_record()
            assert np.array_equal(right.get_array("img")[...], left.get_array("img")[...])
            assert right.download_filedata("README.md") == left.download_filedata("README.md")


def clone_edit_push(src_location: str, dst_location: str) -> None:
    """Clone, lock a new version at the source, push: only the new objects move."""
    source = build_source(src_location)
    with DicedStore(src_location) as src, DicedStore(dst_location) as dst:
        first = src.sync_to(dst, progress=False)
        (copy,) = first.repos
        assert set(copy.copied) == {source.v1, source.v2, source.alt}
        assert copy.skipped == ((source.leaf, "open: lock it to copy it"),)
        old = {source.v1, source.v2, source.alt}
        assert listing(dst.backend) == expected_keys(src.backend, source.repo, old)
        same_versions(src_location, dst_location, sorted(old))

        repo = src.open_repo(uuid=source.leaf)
        repo.lock_node("v3")
        v3 = repo.uuid
        before = listing(dst.backend)
        counted = CountingObjectStore(dst.backend)
        second = copy_versions(src.backend, counted, progress=False)
        added = listing(dst.backend) - before
        assert listing(dst.backend) == expected_keys(src.backend, source.repo, old | {v3})
        with ThreadPoolExecutor(4) as pool:
            walker = Walker(src.backend, pool, strict=True)
            records = VersionGraph(src.backend, source.repo).nodes()
            new_content = {r.key for r in walker.node_refs(records[v3].record)} - {
                r.key for u in old for r in walker.node_refs(records[u].record)}
        new_content = {k for k in new_content if keys.is_immutable(k)}
        # v3 wrote six chunks all holding 2s (one blob), so: a blob, a root page, a manifest.
        assert len(new_content) == 3
        v3_parent = records[records[v3].record.parents[0]].record
        assert added == new_content | {keys.node_record(source.repo, v3),
                                       VersionGraph(src.backend, source.repo).claim_key(
                                           records[v3].record, v3_parent)}
        # Written: the new objects, and the hint of master moved to v3 (it existed).
        assert second.written.objects == len(added) + 1
        writes = counted.calls["put_if_absent"] + counted.calls["put"]
        assert writes == second.written.objects
        assert second.written.bytes == sum(len(dst.backend.get(k) or b"") for k in added) + 32
        assert second.repos[0].copied == (v3,) and second.repos[0].present == 3
        third = src.sync_to(dst, progress=False)
        assert third.written.objects == 0
        same_versions(src_location, dst_location, sorted(old | {v3}))
        assert dst.verify(progress=False).ok


def clone_one_old_version(src_location: str, dst_location: str) -> None:
    """Cloning v1 alone brings exactly v1's objects (and its tag)."""
    source = build_source(src_location)
    with DicedStore(src_location) as src, DicedStore(dst_location) as dst:
        report = src.sync_to(dst, versions=[source.v1], progress=False)
        assert report.repos[0].copied == (source.v1,)
        assert listing(dst.backend) == expected_keys(src.backend, source.repo, {source.v1})
        assert dst.open_repo("em").uuid == source.v1
        same_versions(src_location, dst_location, [source.v1])
        assert dst.verify(progress=False).ok


def killed_copy_resumes(src_location: str, dst_locations: list[str], scratch: str) -> None:
    """A copy killed with SIGKILL (at a different point for each destination) leaves a
    consistent destination, and running it again finishes it."""
    source = build_source(src_location)
    versions = [source.v1, source.v2, source.alt]
    with DicedStore(src_location) as src:
        counted = CountingObjectStore(DicedStore(scratch).backend)
        copy_versions(src.backend, counted, progress=False, jobs=4)
        total = sum(counted.calls[op] for op in MUTATIONS)
        expected = expected_keys(src.backend, source.repo, set(versions))
    for i, dst_location in enumerate(dst_locations):
        kill_after = max(1, total * (i + 1) // (len(dst_locations) + 1))
        proc = subprocess.run(
            [sys.executable, WORKERS, "copy",
             json.dumps({"src": src_location, "dst": dst_location, "kill_after": kill_after})],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, (kill_after, proc.returncode, proc.stderr[-2000:])
        with DicedStore(dst_location) as dst:
            check = dst.verify(progress=False)
            assert check.ok, [d.lines(check.repos) for d in check.damage]
            assert listing(dst.backend) < expected
            if dst.list_repos():  # every version the destination shows is complete
                there = [n.uuid for n in dst.open_repo("em").list_nodes()]
                same_versions(src_location, dst_location, there)
        with DicedStore(src_location) as src, DicedStore(dst_location) as dst:
            src.sync_to(dst, progress=False)
            assert listing(dst.backend) == expected
            assert src.sync_to(dst, progress=False).written.objects == 0
        same_versions(src_location, dst_location, versions)
