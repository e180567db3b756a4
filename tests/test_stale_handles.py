"""Handles opened before an array changed identity never write where nothing reads (defect 2).

A handle (a DicedArray, its zarr array, or a zarr array opened on the repo's Store)
names one array *identity*. Once that array is deleted, or deleted and created again
under the same name, a write through the old handle must fail with a clear error and
change nothing; it must never be acknowledged and then vanish at lock.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from diced import DicedRepo, NotFoundError


def _versions_content(repo: DicedRepo) -> dict[str, bytes]:
    return {name: repo.get_array(name)[...].tobytes() for name, _ in repo.list_instances()}


@pytest.mark.parametrize("recreate", [False, True])
@pytest.mark.parametrize("path", ["array", "handle_zarr", "store_zarr"])
def test_write_through_a_handle_of_a_deleted_array_fails(repo: DicedRepo, recreate: bool,
                                                         path: str) -> None:
    old = repo.create_array("em", np.uint8, shape=(4, 4, 4), chunks=(2, 2, 2))
    old[...] = 1
    target = {"array": old, "handle_zarr": old.zarr,
              "store_zarr": zarr.open_array(repo.zarr_store(), path="em")}[path]
    repo.delete_array("em")
    if recreate:
        repo.create_array("em", np.uint8, shape=(4, 4, 4), chunks=(2, 2, 2))
    before = _versions_content(repo)
    with pytest.raises(NotFoundError, match="deleted"):
        target[1, 1, 1] = 9
    with pytest.raises(NotFoundError, match="deleted"):
        target[0:2, 0:2, 0:2] = 9  # a whole-chunk write too
    assert _versions_content(repo) == before
    repo.lock_node("after the refused writes")
    assert _versions_content(repo) == before


def test_reads_through_a_handle_of_a_deleted_array_fail(repo: DicedRepo) -> None:
    old = repo.create_array("em", np.uint8, shape=(4,), chunks=(2,))
    old[...] = 3
    repo.delete_array("em")
    repo.create_array("em", np.uint8, shape=(4,), chunks=(2,))
    with pytest.raises(NotFoundError, match="get_array"):
        old[...]


def test_a_handle_follows_a_resize_through_another_handle(repo: DicedRepo) -> None:
    a = repo.create_array("em", np.uint8, shape=(8,), chunks=(4,))
    b = repo.get_array("em")
    a[...] = 7
    b.resize(5)
    with pytest.raises(IndexError):
        a[6] = 1  # a sees the new shape: position 6 is out of bounds now
    a[...] = 2
    b.resize(8)
    assert np.array_equal(a[...], [2, 2, 2, 2, 2, 0, 0, 0])
