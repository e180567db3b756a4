"""Versions read and written through plain zarr: repo.zarr_store() and arr.zarr.

Ported from the archived DICED tests: each DICED test started a DVID server on a temporary
directory; here a store is a real directory below ``tmp_path`` (or an in-process
``memory://`` store where a scenario is cheap). Where diced deliberately differs from DICED
(documented in the API), the test checks diced's behaviour and says what DICED did.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from diced import (
    ArrayDtype,
    DicedRepo,
    DicedStore,
)

UNBOUNDED = 2**31 - 1




def test_zarr_interop_at_locked_version(myrepo: DicedRepo, store: DicedStore) -> None:
    em = myrepo.create_array("em", ArrayDtype.uint16, shape=(20, 30, 40), chunks=(8, 8, 8))
    data = np.arange(20 * 30 * 40, dtype=np.uint16).reshape(20, 30, 40)
    em[...] = data
    myrepo.lock_node("for zarr")
    locked_uuid = myrepo.get_current_version()
    child = myrepo.create_branch("after")
    myrepo.change_version(child)
    myrepo.get_array("em")[0, 0, 0] = 9999

    locked_repo = store.open_repo(uuid=locked_uuid)
    z = zarr.open_array(locked_repo.zarr_store(), path="em", mode="r")
    assert z.shape == (20, 30, 40)
    assert z.dtype == np.uint16
    assert np.array_equal(z[...], data)
    assert np.array_equal(z[3:9, ::2, 5], data[3:9, ::2, 5])
    assert np.array_equal(locked_repo.get_array("em").zarr[...], data)

    locked_store = locked_repo.zarr_store()
    assert locked_store.read_only is True
    writable = zarr.open_array(locked_store, path="em")
    with pytest.raises(ValueError, match="read-only"):
        writable[0, 0, 0] = 1
    assert zarr.open_array(locked_repo.zarr_store(), path="em", mode="r")[0, 0, 0] == 0

    # At the open child, zarr sees the child's data.
    child_z = zarr.open_array(store.open_repo(uuid=child).zarr_store(), path="em", mode="r")
    assert child_z[0, 0, 0] == 9999
    assert child_z[0, 0, 1] == 1


def test_zarr_writes_at_open_node_are_visible_to_diced(myrepo: DicedRepo) -> None:
    em = myrepo.create_array("em", ArrayDtype.uint8, shape=(16, 16), chunks=(8, 8))
    z = zarr.open_array(myrepo.zarr_store(), path="em")
    z[2:10, 3:5] = 42
    expected = np.zeros((16, 16), np.uint8)
    expected[2:10, 3:5] = 42
    assert np.array_equal(em[:], expected)
    assert np.array_equal(myrepo.get_array("em")[:], expected)
