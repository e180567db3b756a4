"""Two paths, one answer: DicedArray and zarr on ``repo.zarr_store()`` against numpy (kit a).

Random arrays (dtypes, fill values including NaN, shapes not divisible by the chunks, 1-5
dimensions, unbounded, every chunk key encoding, sharded; created through diced or through
zarr) take random writes through either path. After every step both paths must read exactly
what numpy holds: while the node is open, after it is locked, and after a branch and one
more edit (when the parent must still read as before).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from _oracle import DTYPES, assert_same, scratch_repo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diced import DicedRepo, DicedStore

ENCODINGS: list[dict[str, Any]] = [
    {"name": "default", "separator": "/"},
    {"name": "default", "separator": "."},
    {"name": "v2", "separator": "."},
    {"name": "v2", "separator": "/"},
]
MAX_AXIS = {1: 30, 2: 12, 3: 7, 4: 5, 5: 3}
UNBOUNDED = 2**31 - 1


@dataclass(frozen=True)
class Spec:
    """How one random array is made."""

    shape: tuple[int, ...]  # the region written and compared (the box, if unbounded)
    origin: tuple[int, ...]  # where that region starts (far out, on an unbounded array)
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    fill: Any
    creator: str  # "diced" (repo.create_array) or "zarr" (zarr.create_array on the Store)
    unbounded: bool
    encoding: dict[str, Any]
    shards: tuple[int, ...] | None


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    ndim = draw(st.integers(1, 5))
    shape = tuple(draw(st.integers(1, MAX_AXIS[ndim])) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    dtype = draw(st.sampled_from(DTYPES))
    creator = draw(st.sampled_from(["diced", "zarr"]))
    if creator == "diced":
        unbounded = draw(st.booleans())
        origin = (0,) * ndim
        if unbounded:  # far coordinates make tall index trees
            origin = tuple(draw(st.sampled_from([0, 1000, 2**20 + 3, UNBOUNDED - n]))
                           for n in shape)
        return Spec(shape, origin, chunks, dtype, dtype.type(0), creator, unbounded,
                    ENCODINGS[0], None)
    fills: list[Any] = [0, 1]
    if dtype.kind == "f":
        fills += [np.nan, -2.5]
    elif dtype.kind == "i":
        fills += [-1]
    fill = dtype.type(draw(st.sampled_from(fills)))
    shards = None
    if draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 2)) for c in chunks)
    return Spec(shape, (0,) * ndim, chunks, dtype, fill, creator, False,
                draw(st.sampled_from(ENCODINGS)), shards)


def axis_item(n: int, *, basic: bool) -> st.SearchStrategy[Any]:
    """A non-negative int or a bounded slice with a positive step (valid on both paths)."""
    start = st.integers(0, n)
    sliced = st.tuples(start, start, st.integers(1, 3)).map(
        lambda t: slice(min(t[0], t[1]), max(t[0], t[1]), t[2]))
    return (st.integers(0, n - 1) | sliced) if basic else sliced


@st.composite
def edits(draw: st.DrawFn, spec: Spec) -> tuple[str, tuple[Any, ...], Any]:
    """(path, selection, value): a write that numpy and both paths read the same way."""
    path = draw(st.sampled_from(["diced", "zarr"]))
    selection = tuple(draw(axis_item(n, basic=True)) for n in spec.shape)
    target = np.empty(spec.shape, np.uint8)[selection].shape
    if draw(st.booleans()):
        value: Any = draw(hnp.from_dtype(spec.dtype, allow_nan=True))
    else:
        value = draw(hnp.arrays(spec.dtype, target))
    return path, selection, value


def create(repo: DicedRepo, spec: Spec) -> None:
    if spec.creator == "diced":
        repo.create_array("a", spec.dtype, shape=None if spec.unbounded else spec.shape,
                          dims=len(spec.shape), chunks=spec.chunks)
        return
    zarr.create_array(repo.zarr_store(), name="a", shape=spec.shape, dtype=spec.dtype,
                      chunks=spec.chunks, shards=spec.shards, fill_value=spec.fill,
                      chunk_key_encoding=spec.encoding)


def box(spec: Spec) -> tuple[slice, ...]:
    return tuple(slice(o, o + n) for o, n in zip(spec.origin, spec.shape, strict=True))


def shifted(selection: tuple[Any, ...], origin: tuple[int, ...]) -> tuple[Any, ...]:
    """``selection`` of the box, as a selection of the array."""
    return tuple(slice(s.start + o, s.stop + o, s.step) if isinstance(s, slice) else s + o
                 for s, o in zip(selection, origin, strict=True))


def apply(repo: DicedRepo, spec: Spec, edit: tuple[str, tuple[Any, ...], Any]) -> None:
    path, selection, value = edit
    selection = shifted(selection, spec.origin)
    if path == "diced":
        repo.get_array("a")[selection] = value
    else:
        zarr.open_array(repo.zarr_store(), path="a")[selection] = value


def check(repo: DicedRepo, spec: Spec, expected: np.ndarray[Any, Any]) -> None:
    """Both paths read the whole box as numpy holds it, and the fill value elsewhere."""
    arr = repo.get_array("a")
    assert_same(arr[box(spec)], expected)
    assert_same(zarr.open_array(repo.zarr_store(), path="a", mode="r")[box(spec)], expected)
    if any(spec.origin):  # a far box: the region at the origin was never written
        near = tuple(slice(0, n) for n in spec.shape)
        assert_same(arr[near], np.full(spec.shape, spec.fill, spec.dtype))


def run_both_paths(repo: DicedRepo, data: st.DataObject) -> None:
    """One example: make an array, edit it through both paths, lock, branch, edit again."""
    spec = data.draw(specs())
    expected = np.full(spec.shape, spec.fill, spec.dtype)
    create(repo, spec)
    check(repo, spec, expected)
    for _ in range(data.draw(st.integers(1, 4))):
        edit = data.draw(edits(spec))
        apply(repo, spec, edit)
        expected[edit[1]] = edit[2]
        check(repo, spec, expected)
    repo.lock_node("locked")
    parent = repo.get_current_version()
    check(repo, spec, expected)
    repo.change_version(repo.create_branch("edit"))
    child_expected = expected.copy()
    edit = data.draw(edits(spec))
    apply(repo, spec, edit)
    child_expected[edit[1]] = edit[2]
    check(repo, spec, child_expected)
    repo.lock_node("child locked")
    check(repo, spec, child_expected)
    repo.change_version(parent)
    check(repo, spec, expected)


def differential_test(location: Callable[[], str], examples: int
                      ) -> Callable[[], None]:
    """The kit as a test over stores at ``location()`` (one store, a new repo per example)."""
    @settings(max_examples=examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        with DicedStore(location()) as store:
            run_both_paths(store.create_repo(f"r{uuid.uuid4().hex}"), data)

    return run


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_both_paths_read_what_numpy_holds_in_memory(data: st.DataObject) -> None:
    with scratch_repo() as repo:
        run_both_paths(repo, data)


def test_both_paths_read_what_numpy_holds_on_local_disk(tmp_path: Path) -> None:
    differential_test(lambda: str(tmp_path / "store"), examples=30)()
