"""Tags, diff and merges on local disk and on the GCS and S3 emulators.

The same scenario runs on each: two proofreading branches of a label volume with disjoint
and conflicting edits, a new array and files on one side; a failing merge writes nothing,
the resolved merge reads exactly as numpy's three-way merge says from a fresh store,
locks, and is tagged; its parents are untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore, MergeConflictError

SHAPE, CHUNKS = (32, 32, 32), (16, 16, 16)


@pytest.fixture(params=["local", "gcs", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue(f"{request.param}_bucket")
    return f"{'gs' if request.param == 'gcs' else 's3'}://{bucket}/store"


def test_proofreading_branches_merge(location: str) -> None:
    base = np.zeros(SHAPE, np.uint64)
    base[:, :16] = 1
    base[:, 16:] = 2
    left, right = base.copy(), base.copy()
    left[0:8, 10:20, 0:4] = 3           # a split on the left...
    right[20:28, 10:20, 0:4] = 4        # ...another on the right, in the same chunks
    right[30, 30, 30] = 5               # and one chunk only the right side changes
    left[0, 0, 0], right[0, 0, 0] = 6, 7  # one voxel both changed: a conflict
    with DicedStore(location) as store:
        repo = store.create_repo("seg")
        repo.create_array("labels", np.uint64, shape=SHAPE, chunks=CHUNKS,
                          islabel3D=True)[...] = base
        repo.lock_node("base")
        root = repo.uuid
        versions = []
        for name, data in (("alice", left), ("bob", right)):
            repo.change_version(root)
            repo.change_version(repo.create_branch(f"{name}'s edits", name))
            repo.get_array("labels")[...] = data
            repo.upload_filedata(f"{name}.log", name.encode())
            if name == "bob":
                repo.create_array("mask", np.uint8, shape=(8, 8), chunks=(4, 4))[2, 2] = 1
            repo.lock_node(f"{name} done")
            versions.append(repo.uuid)
        nodes = len(repo.list_nodes())
        with pytest.raises(MergeConflictError) as failure:
            repo.merge(versions, "merge")
        assert [(c.chunk, c.voxels) for c in failure.value.conflicts] == [((0, 0, 0), 1)]
        assert len(repo.list_nodes()) == nodes
        diff = repo.diff(versions[0], versions[1])
        differ = tuple(c for c in np.ndindex(2, 2, 2) if not np.array_equal(
            *(x[tuple(slice(i * 16, i * 16 + 16) for i in c)] for x in (left, right))))
        assert diff.arrays["labels"].modified == differ
        assert diff.arrays["mask"].status == "created"
        merged = repo.merge(versions, "merge", on_conflict="ours", name="merged")

    expected = np.where(right != base, right, left)
    expected[0, 0, 0] = 6
    with DicedStore(location) as store:
        repo = store.open_repo("seg", version=":merged")
        assert repo.uuid == merged and repo.node_record().parents == tuple(versions)
        assert np.array_equal(repo.get_array("labels")[...], expected)
        assert repo.get_array("mask")[2, 2] == 1
        assert sorted(repo.list_files()) == ["alice.log", "bob.log"]
        repo.lock_node("merged")
        repo.create_tag("proofread-1", message="both proofreaders")
        tagged = store.open_repo("seg", version="tag:proofread-1")
        assert np.array_equal(tagged.get_array("labels")[...], expected)
        for version, data in zip(versions, (left, right), strict=True):
            tagged.change_version(version)
            assert np.array_equal(tagged.get_array("labels")[...], data)
        assert [r.uuid for r in tagged.log(merged)][:1] == [merged]
        assert {r.uuid for r in tagged.log(merged)} == {merged, root, *versions}
