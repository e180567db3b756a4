"""Shared by the numpy-oracle tests: scratch repos, exact comparison, Hypothesis strategies."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diced import DicedArray, DicedRepo, DicedStore

DTYPES = [np.dtype(t) for t in (np.bool_, np.int8, np.uint16, np.int32, np.uint64,
                                np.float32, np.float64)]
#: Largest axis length by number of dimensions (keeps examples small but multi-chunk).
MAX_AXIS = {1: 40, 2: 40, 3: 16, 4: 8}
#: Most chunks along one axis, by number of dimensions (bounds the chunks per array).
MAX_CHUNKS_PER_AXIS = {1: 8, 2: 6, 3: 4, 4: 3}
NUMPY_INTS = (np.int64, np.int32, np.intp, np.int16)

ORACLE_SETTINGS = settings(max_examples=150, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])


# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_repo() -> Iterator[DicedRepo]:
    """A repo in a fresh ``memory://`` store, removed afterwards (the memory fs is global)."""
    root = f"diced-oracle/{uuid.uuid4().hex}"
    with DicedStore(f"memory://{root}") as store:
        try:
            yield store.create_repo("oracle", "numpy oracle scratch repo")
        finally:
            fs = MemoryFileSystem()
            if fs.exists(f"/{root}"):
                fs.rm(f"/{root}", recursive=True)


def assert_same(got: Any, expected: Any) -> None:
    """Same dtype, shape and bytes (NaN-safe and sign-of-zero aware)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if got.tobytes() != expected.tobytes():
        raise AssertionError(f"contents differ:\n got      {got!r}\n expected {expected!r}")


def new_array(repo: DicedRepo, dtype: np.dtype[Any], shape: tuple[int, ...],
              chunks: tuple[int, ...]) -> tuple[DicedArray, np.ndarray]:
    arr = repo.create_array(f"a{uuid.uuid4().hex[:8]}", dtype, shape=shape, chunks=chunks)
    return arr, np.zeros(shape, dtype=dtype)


# -- strategies -------------------------------------------------------------------------------


@st.composite
def shapes_and_chunks(draw: st.DrawFn, min_side: int = 0
                      ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(min_side, MAX_AXIS[ndim]),
                                min_size=ndim, max_size=ndim)))
    chunks = []
    for n in shape:
        count = draw(st.integers(1, max(1, min(n, MAX_CHUNKS_PER_AXIS[ndim]))))
        chunks.append(max(1, -(-n // count)) + draw(st.sampled_from([0, 0, 0, 1, 2])))
    return shape, tuple(chunks)


def maybe_numpy_int(value: int) -> st.SearchStrategy[Any]:
    return st.sampled_from([int, *NUMPY_INTS]).map(lambda t: t(value))


def axis_int(n: int) -> st.SearchStrategy[Any]:
    return st.integers(-n, n - 1).flatmap(maybe_numpy_int)


def axis_slice(n: int, *, negative_steps: bool = True) -> st.SearchStrategy[slice]:
    bound = st.none() | st.integers(-n - 3, n + 3)
    steps = st.integers(-5, 5) if negative_steps else st.integers(1, 5)
    step = st.none() | steps.filter(bool)
    return st.builds(slice, bound, bound, step)


@st.composite
def basic_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """ints (python and numpy, negative too), slices (any bounds and steps), one Ellipsis."""
    items: list[Any] = [
        draw(axis_slice(n) | axis_int(n)) if n else draw(axis_slice(n)) for n in shape
    ]
    if draw(st.booleans()):
        start = draw(st.integers(0, len(items)))
        stop = draw(st.integers(start, len(items)))
        items = [*items[:start], Ellipsis, *items[stop:]]
    else:
        items = items[:draw(st.integers(0, len(items)))]
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


@st.composite
def orthogonal_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """One integer-array or boolean-mask index, python ints next to it, slices elsewhere.

    The ints sit next to the index array (no slice in between), where numpy's result
    layout equals zarr's orthogonal one.
    """
    ndim = len(shape)
    axis = draw(st.sampled_from([k for k, n in enumerate(shape) if n]))
    n = shape[axis]
    kind = draw(st.sampled_from(["list", "array", "mask"]))
    if kind == "mask":
        index: Any = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    else:
        ints = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=2 * n + 1))
        index = ints if kind == "list" else np.array(ints, dtype=draw(st.sampled_from(
            [np.int64, np.intp, np.int32])))
    left = draw(st.integers(0, axis))
    right = draw(st.integers(0, ndim - 1 - axis))
    items: list[Any] = []
    for k, size in enumerate(shape):
        if k == axis:
            items.append(index)
        elif (axis - left <= k < axis or axis < k <= axis + right) and size:
            items.append(draw(st.integers(-size, size - 1)))
        else:
            items.append(draw(axis_slice(size, negative_steps=False)))
    keep = draw(st.integers(axis + 1, ndim))
    items = items[:keep]
    if ndim > 1 and len(items) == 1 and kind == "mask":
        items.append(slice(None))  # a lone 1-D mask on an n-D array is a zarr mask selection
    return tuple(items)


def values_for(dtype: np.dtype[Any], target: tuple[int, ...], *,
               broadcast: bool = False) -> st.SearchStrategy[Any]:
    """A scalar (numpy or python) or an array of shape ``target``.

    With ``broadcast``, arrays of any shape numpy broadcasts to ``target`` instead: unit
    or missing axes, and extra leading unit axes (numpy assignment drops them).
    """
    scalar = hnp.from_dtype(dtype)
    python_scalar = scalar.map(lambda v: v.item())
    if not broadcast:
        return st.one_of(scalar, python_scalar, hnp.arrays(dtype, target))
    return broadcast_shapes_to(target).flatmap(lambda s: hnp.arrays(dtype, s))


@st.composite
def broadcast_shapes_to(draw: st.DrawFn, target: tuple[int, ...]) -> tuple[int, ...]:
    """A shape numpy assignment broadcasts to ``target`` (``value`` → ``x[sel] = value``)."""
    kept = target[draw(st.integers(0, len(target))):]
    body = tuple(draw(st.sampled_from([n, 1])) for n in kept)
    return (1,) * draw(st.integers(0, 2)) + body


@st.composite
def write_cases(draw: st.DrawFn) -> tuple[Any, ...]:
    shape, chunks = draw(shapes_and_chunks())
    dtype = draw(st.sampled_from(DTYPES))
    sel = draw(basic_selections(shape))
    target = np.empty(shape, dtype=np.uint8)[sel].shape
    value = draw(values_for(dtype, target))
    read_back = draw(basic_selections(shape))
    return shape, chunks, dtype, sel, value, read_back
