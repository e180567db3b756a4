"""Downsampling against a plain-Python oracle (tests/pyramid/_pyramid_oracle.py): every method,
dtype and edge case."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from _pyramid_oracle import oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from diced.pyramid import METHODS, downsample, downsampled_shape


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any,
            kind: str) -> npt.NDArray[Any]:
    dtype = np.dtype(dtype)
    if kind == "labels":  # few distinct values, so blocks have real majorities and ties
        return rng.choice(np.array([0, 3, 7, 2**40 + 1], dtype=np.uint64), size=shape) \
            .astype(dtype) if dtype.itemsize == 8 else rng.integers(0, 4, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":  # small integers: every sum is exact in float64
        return rng.integers(-1000, 1000, shape).astype(dtype) / 4
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


DTYPES = [np.uint8, np.int8, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float32, np.float64, np.float16, np.bool_]
FACTOR_SETS = [(2, 2, 2), (1, 2, 2), (3, 2, 1), (4, 4, 4)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("factors", FACTOR_SETS, ids=str)
def test_every_method_equals_the_oracle(dtype: Any, factors: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    for shape in ((9, 10, 11), (8, 4, 12), (1, 5, 3)):  # divisible by factors, and not
        for method in METHODS:
            kind = "labels" if method == "mode" else "image"
            data = _random(rng, shape, dtype, kind)
            got = downsample(data, factors, method)
            want = oracle(data, factors, method)
            assert got.dtype == data.dtype and got.shape == downsampled_shape(shape, factors)
            np.testing.assert_array_equal(got, want, err_msg=f"{method} {shape}")


def test_mean_of_64_bit_integers_is_exact_at_the_extremes() -> None:
    big = np.array([[2**64 - 1, 2**64 - 2], [2**64 - 1, 2**64 - 4]], dtype=np.uint64)
    assert downsample(big, (2, 2), "mean")[0, 0] == 2**64 - 2  # (4·2⁶⁴ − 8) / 4
    low = np.array([[-(2**63), -(2**63)], [-(2**63) + 1, -(2**63) + 2]], dtype=np.int64)
    assert downsample(low, (2, 2), "mean")[0, 0] == -(2**63) + 1  # mean −2⁶³ + 0.75
    # Halves go to the even neighbour: 2.5 → 2, 3.5 → 4, −2.5 → −2.
    halves = np.array([2, 3, 3, 4, -2, -3], dtype=np.int64).reshape(3, 2)
    assert downsample(halves, (1, 2), "mean").ravel().tolist() == [2, 4, -2]


def test_mode_ties_go_to_the_smallest_label_and_zero_counts() -> None:
    block = np.array([[5, 5, 9, 9], [0, 0, 0, 7]], dtype=np.uint64)
    assert downsample(block, (1, 4), "mode").ravel().tolist() == [5, 0]


def test_partial_edge_blocks_reduce_only_the_voxels_present() -> None:
    data = np.arange(5, dtype=np.uint16)  # blocks [0 1] [2 3] [4]
    assert downsample(data, (2,), "mean").tolist() == [0, 2, 4]  # 0.5 → 0, 2.5 → 2
    assert downsample(data, (2,), "max").tolist() == [1, 3, 4]
    assert downsample(data, (4,), "nearest").tolist() == [0, 4]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_shapes_factors_and_methods(data: st.DataObject) -> None:
    ndim = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    factors = tuple(data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    method = data.draw(st.sampled_from(METHODS))
    dtype = data.draw(st.sampled_from([np.uint8, np.int16, np.int64, np.uint64, np.float32]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = _random(rng, shape, dtype, "labels" if method == "mode" else "image")
    np.testing.assert_array_equal(downsample(values, factors, method),
                                  oracle(values, factors, method))
