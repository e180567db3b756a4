"""A corruption kit: damage each kind of stored object and expect diced's own errors.

A store is written with every kind of object (repo name claim, repo record, node records,
branch claims and hints, array entries, chunk and file pointers, blobs, index pages of a
two-level tree, manifests), then one object is damaged *through the backend*, as a disk
fault or a careless copy would: truncated, replaced by garbage, replaced by other valid
JSON, a flipped bit, or deleted. Every public read is then exercised. The kit checks
that:

* no read raises anything but a :class:`~diced.DicedException` (never ``struct.error``,
  ``JSONDecodeError``, ``KeyError``...), and the error names the object;
* damage that changes what a read would return is detected (some read raises): a flipped
  bit in an immutable object never turns into wrong data;
* damage to a hint (``heads/``) changes nothing at all.

Subclass :class:`CorruptionTests` and provide a ``location`` fixture returning a fresh,
empty store location (memory, local directory, bucket).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pytest

from diced.errors import DicedException
from diced.store import DicedStore

__all__ = ["DAMAGES", "CorruptionTests", "Scenario", "build_scenario", "exercise"]

DAMAGES: dict[str, Callable[[bytes], bytes | None]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: b"\xff\x00garbage\xfe" * 3,
    "other_json": lambda data: b'{"arrays": {}, "files": {}, "uuid": 7, "state": "locked"}',
    "flipped_bit": lambda data: bytes([data[0] ^ 0x01]) + data[1:] if data else b"\x01",
    "deleted": lambda data: None,
}


Parts = list[tuple[tuple[slice, ...], np.ndarray[Any, Any]]]


@dataclass(frozen=True)
class Scenario:
    """What :func:`build_scenario` wrote, for the reads and the expected answers."""

    repo: str
    nodes: tuple[str, ...]
    #: node → array → [(selection, expected values)]
    arrays: dict[str, dict[str, Parts]]
    files: dict[str, dict[str, bytes]]


def build_scenario(store: DicedStore) -> Scenario:
    """A repo with a locked root (two arrays, one with a two-level index tree, a file) and
    an open child (a chunk rewritten, an array created, a file written)."""
    repo = store.create_repo("kit", "corruption kit")
    em = repo.create_array("em", np.uint16, shape=(8, 8), chunks=(4, 4))
    em_data = np.arange(64, dtype=np.uint16).reshape(8, 8) + 1
    em[...] = em_data
    far = repo.create_array("far", np.uint8, dims=2, chunks=(64, 4))
    far[0:2, 0:2] = 3
    far[4000:4002, 10:12] = 4  # a chunk coordinate past one page: a two-level tree
    repo.upload_filedata("notes.txt", b"locked notes")
    root = repo.get_current_version()
    repo.lock_node("root")
    child = repo.create_branch("child")  # continues master: a next/ claim
    repo.change_version(child)
    em2 = em_data.copy()
    em2[0:4, 0:4] = 99
    repo.get_array("em")[0:4, 0:4] = 99
    fresh = repo.create_array("fresh", np.int8, shape=(4,), chunks=(2,))
    fresh[...] = -1
    repo.upload_filedata("child.txt", b"open notes")
    far_parts: Parts = [((slice(0, 2), slice(0, 2)), np.full((2, 2), 3, np.uint8)),
                 ((slice(4000, 4002), slice(8, 12)), np.array([[0, 0, 4, 4]] * 2, np.uint8))]
    whole: tuple[slice, ...] = (slice(None), slice(None))
    return Scenario(
        repo.repo_uuid, (root, child),
        {root: {"em": [(whole, em_data)], "far": far_parts},
         child: {"em": [(whole, em2)], "far": far_parts,
                 "fresh": [((slice(None),), np.full(4, -1, np.int8))]}},
        {root: {"notes.txt": b"locked notes"},
         child: {"notes.txt": b"locked notes", "child.txt": b"open notes"}})


def exercise(location: str, scenario: Scenario) -> list[DicedException]:
    """Run every public read over the scenario; return the diced errors raised.

    A read that raises anything else fails the test at once; a read that succeeds must
    return exactly what was written.
    """
    errors: list[DicedException] = []

    def attempt(what: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except DicedException as exc:
            errors.append(exc)
            return None
        except Exception:
            pytest.fail(f"{what} raised a non-diced error:\n{traceback.format_exc()}")

    store = attempt("opening the store", lambda: DicedStore(location))
    if store is None:
        return errors
    with store:
        attempt("list_repos", store.list_repos)
        repo = attempt("open_repo", lambda: store.open_repo("kit"))
        if repo is None:
            return errors
        attempt("list_nodes", repo.list_nodes)
        for node in scenario.nodes:
            if attempt("change_version", partial(repo.change_version, node)) is None \
                    and repo.uuid != node:
                continue
            attempt("get_commit_log", repo.get_commit_log)
            attempt("list_instances", repo.list_instances)
            for name, parts in scenario.arrays[node].items():
                arr = attempt("get_array", partial(repo.get_array, name))
                if arr is None:
                    continue
                for box, expected in parts:
                    got = attempt("array read", partial(arr.__getitem__, box))
                    if got is not None:
                        assert np.array_equal(got, expected), \
                            f"{name}{box} at {node} read wrong data"
                attempt("get_extents", arr.get_extents)
                attempt("chunk_digests", arr.chunk_digests)
            files = attempt("list_files", repo.list_files)
            if files is not None:
                for name, data in scenario.files[node].items():
                    got = attempt("download_filedata", partial(repo.download_filedata, name))
                    if got is not None:
                        assert got == data, f"file {name} at {node} read wrong data"
    return errors


def _objects(store: DicedStore, scenario: Scenario) -> dict[str, str]:
    """One key of each object kind in the scenario's store, by kind."""
    keys = [info.key for info in store.backend.list_info("")]
    repo, (root, child) = scenario.repo, scenario.nodes

    def first(prefix: str, *, contains: str = "", largest: bool = False) -> str:
        found = [k for k in keys if k.startswith(prefix) and contains in k]
        assert found, f"no object under {prefix!r}"
        if largest:
            sizes = {i.key: i.size for i in store.backend.list_info(prefix)}
            return max(found, key=lambda k: sizes[k])
        return sorted(found)[0]

    base = f"repos/{repo}/"
    return {
        "store_header": "diced.json",
        "repo_name": first("names/"),
        "repo_record": f"{base}repo.json",
        "root_node_record": f"{base}nodes/{root}.json",
        "open_node_record": f"{base}nodes/{child}.json",
        "branch_claim": first(f"{base}branches/", contains="master"),
        "next_claim": first(f"{base}next/"),
        "manifest": first(f"{base}manifests/"),
        "index_page": first(f"{base}pages/", largest=True),
        "array_entry": first(f"{base}open/{child}/arrays/"),
        "chunk_pointer": first(f"{base}open/{child}/chunks/"),
        "file_pointer": first(f"{base}open/{child}/files/"),
        "blob": first(f"{base}blobs/", largest=True),
    }


#: Damage no reader can tell from a legitimate state: an open node's pointer that is gone
#: reads exactly like a chunk never written there (the parent's chunk shows through).
UNDETECTABLE = {("chunk_pointer", "deleted")}


class CorruptionTests:
    """Damage each object kind in each way; reads raise diced errors, never wrong data."""

    #: The scenario and a snapshot of every object it wrote, per kit subclass: building it
    #: once and copying the objects into each test's fresh location is much cheaper on a
    #: bucket than writing it through diced each time.
    _templates: ClassVar[dict[str, tuple[Scenario, dict[str, bytes]]]] = {}

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError("subclasses provide a fresh, empty store location")

    def _prepare(self, store: DicedStore) -> Scenario:
        """Write the scenario into ``store`` (a fresh location)."""
        template = self._templates.get(type(self).__name__)
        if template is None:
            scenario = build_scenario(store)
            snapshot = {i.key: store.backend.get(i.key) or b""
                        for i in store.backend.list_info("")}
            self._templates[type(self).__name__] = (scenario, snapshot)
            return scenario
        scenario, snapshot = template
        for key, data in snapshot.items():
            store.backend.put(key, data)
        return scenario

    @pytest.mark.parametrize("damage", sorted(DAMAGES))
    @pytest.mark.parametrize("kind", ["store_header", "repo_name", "repo_record",
                                      "root_node_record", "open_node_record", "branch_claim",
                                      "next_claim", "manifest", "index_page", "array_entry",
                                      "chunk_pointer", "file_pointer", "blob"])
    def test_damage_is_reported_by_diced_errors(self, location: str, kind: str,
                                                damage: str) -> None:
        if (kind, damage) in UNDETECTABLE:
            pytest.skip("a deleted pointer reads as one never written (see UNDETECTABLE)")
        with DicedStore(location) as store:
            scenario = self._prepare(store)
            key = _objects(store, scenario)[kind]
            original = store.backend.get(key)
            assert original is not None
            damaged = DAMAGES[damage](original)
            if damaged is None:
                store.backend.delete(key)
            else:
                store.backend.put(key, damaged)
        errors = exercise(location, scenario)
        if damaged != original:
            assert errors, f"{damage} {kind} ({key}) went unnoticed by every read"

    @pytest.mark.parametrize("damage", sorted(DAMAGES))
    def test_a_damaged_branch_hint_changes_nothing(self, location: str, damage: str) -> None:
        with DicedStore(location) as store:
            scenario = self._prepare(store)
            key = f"repos/{scenario.repo}/heads/master"
            original = store.backend.get(key)
            assert original is not None
            damaged = DAMAGES[damage](original)
            if damaged is None:
                store.backend.delete(key)
            else:
                store.backend.put(key, damaged)
        assert exercise(location, scenario) == []
        with DicedStore(location) as store:
            assert store.open_repo("kit").uuid == scenario.nodes[1]  # master's leaf
