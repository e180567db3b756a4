"""The archived DICED array scenarios (test_DicedArray.py) and array features beyond DICED.

Ported from the archived DICED tests: each DICED test started a DVID server on a temporary
directory; here a store is a real directory below ``tmp_path`` (or an in-process
``memory://`` store where a scenario is cheap). Where diced deliberately differs from DICED
(documented in the API), the test checks diced's behaviour and says what DICED did.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from diced import (
    ArrayDtype,
    DicedRepo,
    DicedStore,
    InvalidIndexError,
    InvalidInputError,
)

UNBOUNDED = 2**31 - 1

UNBOUNDED = 2**31 - 1

_STEP_SELECTIONS = [
    (slice(None, None, -1), slice(None), slice(None)),
    (slice(8, 1, -2), slice(None, None, -3), 4),
    (slice(None, None, 2), slice(10, None, -1), slice(6, 0, -4)),
    (3, slice(-1, -9, -2), slice(None, None, -1)),
    (slice(0, 0, -1), slice(None), slice(None)),
    (Ellipsis, slice(None, None, -2)),
    (slice(None, None, -1), Ellipsis),
    (np.int64(2), Ellipsis, np.uint8(5)),
    (np.int32(-1), np.int16(3), slice(None, None, -1)),
    (Ellipsis,),
]


@pytest.mark.parametrize(("name", "dtype"), [("myarray16", ArrayDtype.uint16),
                                             ("myarray32", ArrayDtype.uint32),
                                             ("myarray64", ArrayDtype.uint64)])
def test_newdvidinstances(myrepo: DicedRepo, name: str, dtype: ArrayDtype) -> None:
    arr = myrepo.create_array(name, dtype)
    assert arr.get_numdims() == 3
    assert arr.dtype == np.dtype(dtype.value)
    assert arr.get_extents() == (slice(0, 0), slice(0, 0), slice(0, 0))
    data = np.full((400, 200, 100), 5, dtype.value)
    arr[1:401, 2:202, 3:103] = data
    back = arr[1:401, 2:202, 3:103]
    assert back.dtype == np.dtype(dtype.value)
    assert np.array_equal(back, data)
    assert arr[0, 2, 3] == 0
    assert arr[1, 2, 3] == 5


def test_arraysmall(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("myarray", ArrayDtype.uint64, islabel3D=True)
    assert arr.get_numdims() == 3
    assert arr.get_extents() == (slice(0, 0),) * 3

    data = np.full((400, 200, 100), 5, np.uint64)
    arr[1:401, 2:202, 3:103] = data
    assert np.array_equal(arr[1:401, 2:202, 3:103], data)
    assert arr.get_extents() == (slice(0, 448), slice(0, 256), slice(0, 128))

    # DICED treated negative indices as absolute coordinates. diced's unbounded axes span
    # 0..2**31-2 and refuse negative positions (numpy would count them from the far end),
    # saying how to select instead; nothing is written.
    for selection in [(-3, -1, 4), (slice(-3, -2), slice(-1, None), slice(4, 5))]:
        with pytest.raises(InvalidIndexError, match="unbounded"):
            arr[selection] = 121
        with pytest.raises(InvalidIndexError, match="negative"):
            arr[selection]
    assert arr.get_extents() == (slice(0, 448), slice(0, 256), slice(0, 128))
    # numpy (2.x) refuses a (1, 1, 1) array for a single element, so DICED's
    # ``arr[3, 1, 4] = np.array([[[121]]])`` becomes a scalar or a 1x1x1 region.
    arr[UNBOUNDED - 3, UNBOUNDED - 1, 4] = 121
    assert arr[UNBOUNDED - 3, UNBOUNDED - 1, 4] == 121
    assert arr.get_extents() == (slice(0, UNBOUNDED), slice(0, UNBOUNDED),  # clipped
                                 slice(0, 128))

    arr[UNBOUNDED - 3, UNBOUNDED - 1, 3:5] = np.array([[[121, 122]]], np.uint64)
    got = arr[UNBOUNDED - 3, UNBOUNDED - 1, 3:5]
    assert got.dtype == np.uint64
    assert np.array_equal(got, np.array([121, 122], np.uint64))
    assert arr[UNBOUNDED - 3, UNBOUNDED - 1, 5] == 0

    with pytest.raises(InvalidIndexError):
        arr[0, 5, 1, 2]


def test_negative_indices_follow_numpy_on_bounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("small", ArrayDtype.uint16, shape=(5, 6, 7), chunks=(2, 4, 3))
    oracle = np.zeros((5, 6, 7), np.uint16)
    for sel, value in [((-1, -2, -3), 9), ((slice(-3, -1), -1, slice(None, -4)), 4),
                       ((-5, slice(-6, None), 0), 11)]:
        arr[sel] = value
        oracle[sel] = value
    assert np.array_equal(arr[:], oracle)
    assert arr[-1, -2, -3] == oracle[4, 4, 4] == 9
    assert np.array_equal(arr[-2:, -3:-1, -7], oracle[-2:, -3:-1, -7])


def test_array1d2d(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("myarray2d", ArrayDtype.uint8, dims=2)
    assert arr.get_numdims() == 2
    assert arr.get_extents() == (slice(0, 0), slice(0, 0))
    data = np.full((200, 100), 5, np.uint8)
    arr[2:202, 3:103] = data
    assert np.array_equal(arr[2:202, 3:103], data)
    assert arr.get_extents() == (slice(0, 512), slice(0, 512))
    with pytest.raises(InvalidIndexError):
        arr[0, 0, 0]

    arr1 = myrepo.create_array("myarray1d", ArrayDtype.uint8, dims=1)
    assert arr1.get_numdims() == 1
    assert arr1.get_extents() == (slice(0, 0),)  # DICED returned a bare slice
    data1 = np.full((100,), 5, np.uint8)
    arr1[3:103] = data1
    back = arr1[3:103]
    assert back.shape == (100,)
    assert np.array_equal(back, data1)
    assert arr1.get_extents() == (slice(0, 262144),)
    assert arr1[3] == 5  # DICED's 1-D scalar read raised TypeError
    assert arr1[2] == 0
    with pytest.raises(InvalidIndexError):
        arr1[0:3, 0:3]


def test_arraylarge(tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "large.diced")) as store:
        arr = store.create_repo("myrepo").create_array("myarray", ArrayDtype.uint8)
        data = np.full((1400, 1200, 1000), 3, np.uint8)
        arr[1:1401, 2:1202, 3:1003] = data
        assert np.array_equal(arr[1:1401, 2:1202, 3:1003], data)
        del data
        assert arr[1401, 1202, 1003] == 0
        assert arr[1, 2, 3] == 3
        assert arr[0, 2, 3] == 0
        assert arr.get_extents() == (slice(0, 1408), slice(0, 1216), slice(0, 1024))


def test_islabel3d_round_trips(myrepo: DicedRepo, store: DicedStore) -> None:
    myrepo.create_array("labels", ArrayDtype.uint64, islabel3D=True)
    myrepo.create_array("plain64", ArrayDtype.uint64)
    myrepo.lock_node("labels")
    reopened = store.open_repo(uuid=myrepo.get_current_version())
    assert reopened.get_array("labels").islabel3D is True
    assert reopened.get_array("plain64").islabel3D is False


def test_lossy_uint8_array_is_approximately_equal(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("jpeg", ArrayDtype.uint8, lossycompression=True)
    z, y, x = np.meshgrid(np.arange(64), np.arange(128), np.arange(128), indexing="ij")
    data = (64 + 40 * np.sin(x / 9.0) + 30 * np.cos(y / 13.0) + z).astype(np.uint8)
    arr[0:64, 0:128, 0:128] = data
    back = arr[0:64, 0:128, 0:128]
    assert back.shape == data.shape
    assert back.dtype == np.uint8
    error = np.abs(back.astype(np.int16) - data.astype(np.int16))
    assert error.mean() < 2.0
    assert error.max() < 32
    assert np.array_equal(arr[64:65, 0:4, 0:4], np.zeros((1, 4, 4), np.uint8))


def test_unbounded_sparse_writes_far_away(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("sparse", ArrayDtype.uint32)
    assert arr.shape == (UNBOUNDED,) * 3
    far = 10**6
    block = np.arange(8, dtype=np.uint32).reshape(2, 2, 2)
    arr[far:far + 2, far:far + 2, far:far + 2] = block
    assert np.array_equal(arr[far:far + 2, far:far + 2, far:far + 2], block)
    assert arr[far, far, far] == 0
    assert arr[far + 1, far + 1, far + 1] == 7
    assert arr[0, 0, 0] == 0
    lo = far // 64 * 64
    assert arr.get_extents() == (slice(lo, lo + 64),) * 3
    arr[0, 0, 0] = 1
    assert arr.get_extents() == (slice(0, lo + 64),) * 3
    # Only the two chunks that were written are stored.
    node_store = myrepo.zarr_store()

    async def chunk_keys() -> list[str]:
        return [k async for k in node_store.list_prefix("sparse/c/")]

    c = far // 64
    assert sorted(asyncio.run(chunk_keys())) == ["sparse/c/0/0/0", f"sparse/c/{c}/{c}/{c}"]


def test_unbounded_array_refuses_whole_read(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("huge", ArrayDtype.uint8, dims=2)
    with pytest.raises(InvalidInputError, match="unbounded"):
        np.asarray(arr)


def test_extents_follow_version_history(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("e", ArrayDtype.uint8, dims=2, chunks=(10, 10))
    arr[5, 5] = 1
    assert arr.get_extents() == (slice(0, 10), slice(0, 10))
    myrepo.lock_node("one chunk")
    root = myrepo.get_current_version()
    assert myrepo.get_array("e").get_extents() == (slice(0, 10), slice(0, 10))
    myrepo.change_version(myrepo.create_branch("grow"))
    arr = myrepo.get_array("e")
    arr[35, 21] = 2
    assert arr.get_extents() == (slice(0, 40), slice(0, 30))
    myrepo.change_version(root)
    assert myrepo.get_array("e").get_extents() == (slice(0, 10), slice(0, 10))


def test_resize_bounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("r", ArrayDtype.uint16, shape=(10, 10), chunks=(4, 4))
    arr[:] = np.arange(100, dtype=np.uint16).reshape(10, 10)
    arr.resize(6, 12)
    assert arr.shape == (6, 12)
    expected = np.zeros((6, 12), np.uint16)
    expected[:, :10] = np.arange(100, dtype=np.uint16).reshape(10, 10)[:6]
    assert np.array_equal(arr[:], expected)
    arr.resize((12, 12))
    assert arr.shape == (12, 12)
    assert np.array_equal(arr[:6], expected)
    # Chunk rows wholly outside the 6-row shape (rows 8..11) were dropped by the shrink,
    # so they read as the fill value. (Rows 6-7 share a chunk with rows 4-5 and keep
    # their old values, as in zarr.)
    assert np.array_equal(arr[8:, :], np.zeros((4, 12), np.uint16))
    assert myrepo.get_array("r").shape == (12, 12)
    with pytest.raises(InvalidIndexError):
        arr[12, 0]


def test_resize_is_versioned(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("r", ArrayDtype.uint8, shape=(4, 4))
    arr[:] = 1
    myrepo.lock_node("4x4")
    root = myrepo.get_current_version()
    myrepo.change_version(myrepo.create_branch("grow"))
    grown = myrepo.get_array("r")
    grown.resize(8, 8)
    grown[7, 7] = 2
    myrepo.change_version(root)
    old = myrepo.get_array("r")
    assert old.shape == (4, 4)
    assert np.array_equal(old[:], np.ones((4, 4), np.uint8))


@pytest.mark.parametrize("sel", _STEP_SELECTIONS, ids=[str(s) for s in _STEP_SELECTIONS])
def test_selections_match_numpy(myrepo: DicedRepo, sel: tuple[object, ...]) -> None:
    shape = (9, 11, 7)
    rng = np.random.default_rng(7)
    initial = rng.integers(0, 1000, size=shape, dtype=np.uint16)
    arr = myrepo.create_array("steps", ArrayDtype.uint16, shape=shape, chunks=(4, 3, 5))
    arr[...] = initial
    oracle = initial.copy()

    got = arr[sel]
    assert np.array_equal(got, oracle[sel])
    assert np.shape(got) == oracle[sel].shape

    value = rng.integers(0, 1000, size=oracle[sel].shape, dtype=np.uint16)
    arr[sel] = value
    oracle[sel] = value
    assert np.array_equal(arr[:], oracle)

    arr[sel] = 999  # a scalar broadcasts, as in numpy
    oracle[sel] = 999
    assert np.array_equal(arr[...], oracle)


def test_numpy_integer_indices_on_unbounded_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("ints", ArrayDtype.uint8)
    arr[np.int64(5), np.uint16(6), np.int8(7)] = np.uint8(200)
    assert arr[5, 6, 7] == 200
    assert arr[np.uint32(5), np.int64(6), np.int16(7)] == 200
    assert np.array_equal(arr[np.int64(5), 6, 6:9], [0, 200, 0])


@pytest.mark.parametrize(("sel", "value_shape"), [
    ((slice(None, None, -1), 0, 0), (1, 4)),
    ((slice(None), 0, 0), (1, 1, 4)),
    ((slice(None, None, -1), slice(1, 3), 2), (1, 4, 2)),
    ((slice(0, 2), slice(None, None, -1), slice(None)), (2, 1, 4)),
])
def test_value_broadcasting_matches_numpy(myrepo: DicedRepo, sel: tuple[object, ...],
                                          value_shape: tuple[int, ...]) -> None:
    # numpy drops leading length-1 axes of the value and broadcasts the rest.
    arr = myrepo.create_array("b", ArrayDtype.uint16, shape=(4, 4, 4), chunks=(2, 2, 2))
    oracle = np.zeros((4, 4, 4), np.uint16)
    value = np.arange(1, 1 + int(np.prod(value_shape)), dtype=np.uint16).reshape(value_shape)
    oracle[sel] = value
    arr[sel] = value
    assert np.array_equal(arr[...], oracle)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int32, np.float32, np.float64,
                                   "uint16", ArrayDtype.uint32])
def test_other_numpy_dtypes_round_trip(myrepo: DicedRepo, store: DicedStore,
                                       dtype: object) -> None:
    np_dtype = np.dtype(dtype.value if isinstance(dtype, ArrayDtype) else dtype)
    arr = myrepo.create_array("d", dtype, shape=(6, 5), chunks=(4, 4))
    assert arr.dtype == np_dtype
    rng = np.random.default_rng(3)
    data = (rng.integers(-100, 100, size=(6, 5)) if np_dtype.kind in "iu"
            else rng.random((6, 5)) * 100).astype(np_dtype)
    if np_dtype.kind == "u":
        data = np.abs(data.astype(np.int64)).astype(np_dtype)
    if np_dtype.kind == "f":
        data[0, 0] = np.nan
    arr[...] = data
    myrepo.lock_node("typed")
    back = store.open_repo(uuid=myrepo.get_current_version()).get_array("d")[...]
    assert back.dtype == np_dtype
    assert np.array_equal(back, data, equal_nan=np_dtype.kind == "f")
    listed = dict(myrepo.list_instances())["d"]
    assert (listed.value if isinstance(listed, ArrayDtype) else listed) == np_dtype


def test_zero_length_array(myrepo: DicedRepo) -> None:
    arr = myrepo.create_array("empty", np.float32, shape=(0, 5))
    assert arr.shape == (0, 5)
    assert arr[...].shape == (0, 5)
    arr[...] = 1.0  # writes nothing, like numpy
    assert arr.get_extents() == (slice(0, 0), slice(0, 0))
