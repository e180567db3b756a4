"""The DICED scenarios (repos, arrays, files, lock, branch) and locked immutability, run on
the GCS and S3 emulators.

The scenario tests are imported from ``tests/test_scenarios_*.py`` and collected here
again; this module's ``location`` and ``store`` fixtures point them at a fresh bucket.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from test_locked_immutability import (
    assert_refuses_writes,
    churn,
    node_digest,
    populate_root,
)
from test_scenarios_array import (
    test_array1d2d,
    test_arraysmall,
    test_resize_is_versioned,
    test_unbounded_sparse_writes_far_away,
)
from test_scenarios_repo import (
    test_array_scenario,
    test_change_version_by_branch_name,
    test_commit_log_is_fresh_after_lock,
    test_delete_array_hides_only_here_and_below,
    test_files_scenario,
    test_open_repo_by_name_opens_newest_master_node,
    test_repoversion,
)
from test_scenarios_store import (
    test_deleted_repo_name_can_be_reused,
    test_readme_session,
    test_repos,
)

from diced import DicedStore, LockedError

__all__ = [
    "test_array1d2d",
    "test_array_scenario",
    "test_arraysmall",
    "test_change_version_by_branch_name",
    "test_commit_log_is_fresh_after_lock",
    "test_delete_array_hides_only_here_and_below",
    "test_deleted_repo_name_can_be_reused",
    "test_files_scenario",
    "test_open_repo_by_name_opens_newest_master_node",
    "test_readme_session",
    "test_repos",
    "test_repoversion",
    "test_resize_is_versioned",
    "test_unbounded_sparse_writes_far_away",
]


@pytest.fixture
def location(cloud_location: str) -> str:
    return cloud_location


@pytest.fixture
def store(cloud_location: str) -> Iterator[DicedStore]:
    with DicedStore(cloud_location) as s:
        yield s


def test_locked_nodes_never_change_and_refuse_writes(cloud_location: str) -> None:
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("immutable")
        populate_root(repo)
        stale = repo.get_array("img")
        repo.lock_node("root data")
        root = repo.uuid
        digest = node_digest(repo)
        with pytest.raises(LockedError):
            stale[0, 0, 0] = 1
        repo.change_version(repo.create_branch("child"))
        churn(repo, seed=1)
        repo.lock_node("child data")
        child, child_digest = repo.uuid, node_digest(repo)

    with DicedStore(cloud_location) as reopened:
        for uuid, expected in ((root, digest), (child, child_digest)):
            locked = reopened.open_repo(uuid=uuid)
            assert locked.locked
            assert node_digest(locked) == expected
            assert_refuses_writes(locked)


def test_store_opened_by_another_client_sees_everything(cloud_location: str) -> None:
    with DicedStore(cloud_location) as store:
        repo = store.create_repo("shared")
        arr = repo.create_array("a", np.uint16, shape=(40, 50, 30), chunks=(16, 16, 16))
        data = np.arange(40 * 50 * 30, dtype=np.uint16).reshape(arr.shape)
        arr[...] = data
        repo.upload_filedata("notes/readme.txt", b"hello")
        repo.lock_node("v1")
    with DicedStore(cloud_location) as other:
        repo = other.open_repo("shared")
        assert repo.locked
        assert np.array_equal(repo.get_array("a")[...], data)
        assert repo.download_filedata("notes/readme.txt") == b"hello"
