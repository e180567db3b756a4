"""Merging versions with pyramids: level 0 merges, its levels follow at lock."""

from __future__ import annotations

import numpy as np
from _pyramid_oracle import pyramid_oracle

from diced import DicedStore


def test_a_clean_merge_of_level_0_is_not_blocked_by_its_levels(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    data = np.random.default_rng(21).integers(0, 256, (16, 32, 32)).astype(np.uint8)
    arr = repo.create_array("em", np.uint8, shape=data.shape, chunks=(8, 8, 8))
    arr[...] = data
    arr.build_pyramid(levels=2)
    repo.lock_node("base")
    base = repo.uuid
    ours, theirs = data.copy(), data.copy()
    # Neighbouring voxels of one level-1 voxel, and neighbouring level-1 voxels of one
    # level-2 voxel: level 0 merges cleanly, but its levels changed differently on both
    # sides in the same voxels.
    ours[0, 0, 0], theirs[0, 0, 1] = 255, 1
    ours[4:6, 4:6, 4:6], theirs[4:6, 4:6, 6:8] = 200, 3
    tips = []
    for name, edited in (("ours", ours), ("theirs", theirs)):
        repo.change_version(base)
        repo.change_version(repo.create_branch(name, name))
        repo.get_array("em")[...] = edited
        repo.lock_node(name)
        tips.append(repo.uuid)
    assert repo.merge_conflicts(tips) == []
    repo.change_version(repo.merge(tips, "both edits"))
    repo.lock_node("merged")
    merged = data.copy()
    merged[0, 0, 0], merged[0, 0, 1] = 255, 1
    merged[4:6, 4:6, 4:6], merged[4:6, 4:6, 6:8] = 200, 3
    arr = repo.get_array("em")
    want = pyramid_oracle(merged, [(2, 2, 2)] * 2, "mean")
    for k in range(3):
        np.testing.assert_array_equal(arr.level(k)[...], want[k], err_msg=f"level {k}")
