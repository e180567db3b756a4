"""DicedArray indexing against numpy as the oracle.

Every test applies the same write to a numpy array and to a DicedArray, then compares the
full contents and a read of the selection bit for bit (so NaN payloads and -0.0 count).
Arrays are small with small chunks, so selections cross chunk boundaries and hit partial
chunks.

Selection kinds that zarr's ``Array.__getitem__``/``__setitem__`` route differently from
numpy are left out of the random strategies (zarr 3.1 limitations passed through by
diced): numpy integer scalars next to an index array, Ellipsis or negative steps together
with an index array, a 1-D boolean mask as the whole selection of an n-D array, and
several index arrays that are not a full coordinate selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr
from _oracle import (
    DTYPES,
    MAX_AXIS,
    ORACLE_SETTINGS,
    assert_same,
    basic_selections,
    new_array,
    orthogonal_selections,
    scratch_repo,
    shapes_and_chunks,
    values_for,
    write_cases,
)
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diced import (
    DicedArray,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
)

# -- basic selections -------------------------------------------------------------------------


@ORACLE_SETTINGS
@given(case=write_cases())
def test_basic_selection_write_and_read_match_numpy(case: tuple[Any, ...]) -> None:
    shape, chunks, dtype, sel, value, read_back = case
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        oracle[sel] = value
        arr[sel] = value
        assert_same(arr[...], oracle)
        assert_same(arr[sel], oracle[sel])
        assert_same(arr[read_back], oracle[read_back])


@ORACLE_SETTINGS
@given(data=st.data())
def test_sequence_of_basic_writes_matches_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        for _ in range(data.draw(st.integers(1, 4))):
            sel = data.draw(basic_selections(shape))
            value = data.draw(values_for(dtype, oracle[sel].shape))
            oracle[sel] = value
            arr[sel] = value
        assert_same(arr[...], oracle)
        sel = data.draw(basic_selections(shape))
        assert_same(arr[sel], oracle[sel])


# -- orthogonal and mask selections -----------------------------------------------------------


def has_repeated_index(sel: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    """An integer index array naming an element twice: numpy keeps the last value written
    there and zarr any one, so such writes are compared with scalar values only."""
    return any(isinstance(s, list | np.ndarray) and np.asarray(s).dtype != bool
               and len({int(i) % shape[k] for i in s}) != len(s)
               for k, s in enumerate(sel))


@ORACLE_SETTINGS
@given(data=st.data())
def test_orthogonal_index_read_and_write_match_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    filler = data.draw(hnp.arrays(dtype, shape))
    sel = data.draw(orthogonal_selections(shape))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        arr[...] = filler
        oracle[...] = filler
        assert_same(arr[sel], oracle[sel])
        if has_repeated_index(sel, shape):
            value: Any = data.draw(hnp.from_dtype(dtype))
        else:
            value = data.draw(values_for(dtype, oracle[sel].shape))
        oracle[sel] = value
        arr[sel] = value
        assert_same(arr[...], oracle)
        assert_same(arr[sel], oracle[sel])


@ORACLE_SETTINGS
@given(data=st.data())
def test_full_boolean_mask_read_and_write_match_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        filler = data.draw(hnp.arrays(dtype, shape))
        arr[...] = filler
        oracle[...] = filler
        assert_same(arr[mask], oracle[mask])
        value = data.draw(values_for(dtype, oracle[mask].shape))
        oracle[mask] = value
        arr[mask] = value
        assert_same(arr[...], oracle)


@ORACLE_SETTINGS
@given(data=st.data())
def test_coordinate_selection_read_matches_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    count = data.draw(st.integers(1, 12))
    coords = tuple(np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=count,
                                               max_size=count)), dtype=np.int64)
                   for n in shape)
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        filler = data.draw(hnp.arrays(dtype, shape))
        arr[...] = filler
        oracle[...] = filler
        assert_same(arr[coords], oracle[coords])
        assert_same(arr.zarr.vindex[coords], oracle[coords])


_MASK7 = np.array([True, False, True, False, False, True, True])


@pytest.mark.parametrize("sel", [
    (np.int64(1), [0, 2]),  # numpy integer scalar next to an index array
    ([1, 3], Ellipsis),  # Ellipsis with an index array
    (slice(None, None, -1), [0, 2]),  # negative step with an index array
    (_MASK7,),  # a lone 1-D mask on a 3-D array
    (1, slice(None), [0, 2]),  # an int and an index array apart: numpy moves the axis first
    (slice(2, None, -1), 1, [4, 0, 2]),
], ids=["numpy-int", "ellipsis", "negative-step", "lone-mask", "int-apart", "apart-flipped"])
def test_advanced_selections_zarr_lays_out_differently_follow_numpy(sel: tuple[Any, ...]) -> None:
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, np.dtype(np.int32), (7, 9, 5), (3, 4, 2))
        oracle[...] = np.arange(oracle.size).reshape(oracle.shape)
        arr[...] = oracle
        assert_same(arr[sel], oracle[sel])
        value = -np.arange(1, 1 + oracle[sel].size, dtype=np.int32).reshape(oracle[sel].shape)
        oracle[sel] = value
        arr[sel] = value
        assert_same(arr[...], oracle)


@pytest.mark.parametrize("sel", [
    ([0, 1], slice(None), [2, 3]),  # numpy pairs the arrays up, zarr would cross them
    ([0, 1], [2, 3]),  # fewer index arrays than axes, the rest sliced
    (np.zeros((2, 2), dtype=np.intp), 1, 1),  # a 2-D index array on one axis
], ids=["arrays-apart", "arrays-then-slice", "2d-index-array"])
def test_selections_numpy_and_zarr_read_differently_are_refused(sel: tuple[Any, ...]) -> None:
    with scratch_repo() as repo:
        arr, _ = new_array(repo, np.dtype(np.int32), (7, 9, 5), (3, 4, 2))
        with pytest.raises(InvalidIndexError, match="index array"):
            arr[sel]
        with pytest.raises(InvalidIndexError, match="index array"):
            arr[sel] = 1
        assert not arr[...].any()


# -- casting of assigned values ---------------------------------------------------------------


@ORACLE_SETTINGS
@given(data=st.data())
def test_int64_values_wrap_into_uint16_like_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    sel = data.draw(basic_selections(shape))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, np.dtype(np.uint16), shape, chunks)
        target = oracle[sel].shape
        value = data.draw(hnp.arrays(np.int64, target))
        oracle[sel] = value
        arr[sel] = value
        assert_same(arr[...], oracle)
        assert_same(arr[sel], oracle[sel])


@pytest.mark.parametrize(("source", "target"), [
    (np.int64, np.uint16), (np.int64, np.int8), (np.int64, np.uint64), (np.int32, np.bool_),
    (np.int64, np.float32), (np.float64, np.float32), (np.bool_, np.int32),
    (np.uint64, np.int8),
])
def test_array_values_cast_like_numpy_assignment(source: type, target: type) -> None:
    raw = [-(2**40) - 1, -70000, -1, 0, 1, 255, 256, 65535, 65536, 70000, 2**40 + 3]
    values = np.array(raw).astype(source)
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, np.dtype(target), (len(raw) + 3,), (4,))
        oracle[2:-1] = values
        arr[2:-1] = values
        assert_same(arr[...], oracle)
        arr[::-1] = oracle
        assert_same(arr[...], oracle[::-1])


def test_out_of_range_python_scalar_is_refused_and_nothing_changes() -> None:
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, np.dtype(np.uint16), (10,), (3,))
        arr[...] = 7
        oracle[...] = 7
        with pytest.raises(OverflowError):
            oracle[2:5] = -1
        with pytest.raises(InvalidInputError):
            arr[2:5] = -1
        assert_same(arr[...], oracle)


# -- broadcasting of assigned values -----------------------------------------------------------


@ORACLE_SETTINGS
@given(data=st.data())
def test_broadcast_array_values_match_numpy(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))
    sel = data.draw(basic_selections(shape) | orthogonal_selections(shape).filter(
        lambda s: not has_repeated_index(s, shape)))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        value = data.draw(values_for(dtype, oracle[sel].shape, broadcast=True))
        try:
            oracle[sel] = value
        except (ValueError, TypeError):
            reject()  # numpy refuses some: [[v]] at a single element, 2-D values at a mask
        arr[sel] = value
        assert_same(arr[...], oracle)


@pytest.mark.parametrize(("shape", "chunks", "sel", "value_shape"), [
    ((4, 6), (2, 2), (slice(None),), (6,)),  # a row written to every row
    ((4, 6), (2, 2), (slice(None),), (4, 1)),  # a column written to every column
    ((4, 3, 2), (1, 1, 1), (Ellipsis,), (1, 1, 1)),
    ((7, 9, 5), (3, 4, 2), (slice(0, 2),), (1, 2, 9, 5)),  # extra leading unit axis
    ((7, 9, 5), (3, 4, 2), (slice(1, 6), 3), (5,)),
    ((4, 6), (2, 2), (slice(None), [0, 2]), (2,)),  # index array: zarr's path
    ((4, 6), (2, 2), ([1, 3],), (6,)),
    ((4, 6), (2, 2), (np.array([True, False, True, False]), slice(None)), (1, 6)),
])
def test_array_value_broadcasts_like_numpy(shape: tuple[int, ...], chunks: tuple[int, ...],
                                           sel: tuple[Any, ...],
                                           value_shape: tuple[int, ...]) -> None:
    value = np.arange(1, 1 + int(np.prod(value_shape)), dtype=np.int32).reshape(value_shape)
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, np.dtype(np.int32), shape, chunks)
        oracle[sel] = value
        arr[sel] = value
        assert_same(arr[...], oracle)


# -- resizing -------------------------------------------------------------------------------------


def resized(oracle: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """numpy model of a resize: the overlap is kept, everything else is the fill value."""
    out = np.zeros(shape, dtype=oracle.dtype)
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(oracle.shape, shape, strict=True))
    out[overlap] = oracle[overlap]
    return out


@ORACLE_SETTINGS
@given(data=st.data())
def test_resizes_match_numpy_model(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks())
    dtype = data.draw(st.sampled_from(DTYPES))
    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        filler = data.draw(hnp.arrays(dtype, shape))
        arr[...] = filler
        oracle[...] = filler
        for _ in range(data.draw(st.integers(1, 3))):
            new_shape = tuple(data.draw(st.integers(0, MAX_AXIS[len(shape)])) for _ in shape)
            arr.resize(*new_shape)
            oracle = resized(oracle, new_shape)
            assert arr.shape == new_shape
            assert_same(arr[...], oracle)


def test_shrink_then_grow_reads_fill_value() -> None:
    """Elements cut off by a shrink must not come back when the array grows again."""
    with scratch_repo() as repo:
        arr, _ = new_array(repo, np.dtype(np.float32), (50,), (8,))
        arr[...] = np.arange(1, 51, dtype=np.float32)
        arr.resize(20)
        arr.resize(60)
        expected = np.zeros(60, dtype=np.float32)
        expected[:20] = np.arange(1, 21)
        assert_same(arr[...], expected)


@pytest.mark.parametrize(("dtype", "fill"), [
    ("uint8", 0), ("uint64", 7), ("float32", -0.0), ("float64", float("nan")),
    ("float32", 0.0), ("int16", -1)])
def test_unwritten_chunks_read_as_the_fill_value(dtype: str, fill: float) -> None:
    """Chunks never written read as the fill value, bit for bit (reads leave chunks whose
    fill is all zero bytes untouched in zeroed memory, and write every other fill)."""
    with scratch_repo() as repo:
        zarr.create_array(repo.zarr_store(), name="a", shape=(20, 20), dtype=dtype,
                          chunks=(8, 8), fill_value=fill)
        arr = repo.get_array("a")
        arr[9:11, 3:17] = 5
        expected = np.full((20, 20), fill, dtype=dtype)
        expected[9:11, 3:17] = 5
        got = arr[...]
        assert got.tobytes() == expected.tobytes()
        assert arr[2:19, 1:15].tobytes() == expected[2:19, 1:15].tobytes()


# -- versions -------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_locked_node_keeps_the_snapshot_after_branch_writes(data: st.DataObject) -> None:
    shape, chunks = data.draw(shapes_and_chunks(min_side=1))
    dtype = data.draw(st.sampled_from(DTYPES))

    def write_some(arr: DicedArray, oracle: np.ndarray) -> None:
        for _ in range(data.draw(st.integers(1, 3))):
            sel = data.draw(basic_selections(shape))
            value = data.draw(values_for(dtype, oracle[sel].shape))
            oracle[sel] = value
            arr[sel] = value

    with scratch_repo() as repo:
        arr, oracle = new_array(repo, dtype, shape, chunks)
        write_some(arr, oracle)
        snapshot = oracle.copy()
        repo.lock_node("snapshot")
        locked = repo.uuid
        with pytest.raises(LockedError):
            arr[(0,) * len(shape)] = oracle[(0,) * len(shape)]
        for branch in (None, "side"):
            repo.change_version(locked)
            repo.change_version(repo.create_branch(f"child {branch}", branch))
            child = repo.get_array(arr.name)
            child_oracle = snapshot.copy()
            assert_same(child[...], child_oracle)
            write_some(child, child_oracle)
            assert_same(child[...], child_oracle)
        repo.change_version(locked)
        assert_same(repo.get_array(arr.name)[...], snapshot)
        sel = data.draw(basic_selections(shape))
        assert_same(repo.get_array(arr.name)[sel], snapshot[sel])
