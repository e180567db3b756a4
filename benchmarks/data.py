"""The benchmark's data: two synthetic volumes, and the random selections read and written.

Everything is deterministic for a given plan (its size and seed), so every system reads and
writes exactly the same bytes at the same places.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from benchmarks.plan import Layout
from diced.demo import synthetic_volume

__all__ = ["ARRAYS", "Box", "aligned_boxes", "box_of_chunk", "distinct_chunks",
           "ensure_tiff_stack", "ensure_volumes", "load_volume", "random_blocks",
           "tiled_volume", "unaligned_boxes"]

#: A rectangular selection: one slice per axis.
Box = tuple[slice, ...]


class Plan(Protocol):
    """What the data depends on: the volumes' edge, the chunk edge and the seed (the local
    :class:`benchmarks.plan.Plan` and the cloud plan both have them)."""

    @property
    def size(self) -> int: ...
    @property
    def chunk(self) -> int: ...
    @property
    def seed(self) -> int: ...

#: The benchmark arrays and their dtypes: a realistic image and a label volume.
ARRAYS: dict[str, np.dtype[Any]] = {"image": np.dtype(np.uint8), "labels": np.dtype(np.uint64)}


def ensure_volumes(layout: Layout, plan: Plan) -> None:
    """Write the plan's volumes to ``layout.data(...)`` unless they are there already.

    The image is diced's demo volume: smooth blobs quantised to 8 grey levels plus faint
    noise, so blosc-zstd-1 compresses it about 3× as it would a stained EM or light-sheet
    volume. The labels are one constant uint64 id per blob (large constant regions, 0 as
    background), so they compress by two to three orders of magnitude.
    """
    if all(layout.data(name).exists() for name in ARRAYS):
        return
    image, labels = synthetic_volume(plan.size, seed=plan.seed)
    for name, volume in (("image", image), ("labels", labels)):
        path = layout.data(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, volume)


def ensure_tiff_stack(layout: Layout, name: str) -> list[Path]:
    """The volume ``name`` as one 2-D TIFF per z-slice (written once, with tifffile).

    This is what a microscope hands over; the import workload reads it. Returns the slice
    files in z order.
    """
    import tifffile

    directory = layout.tiff_stack(name)
    volume = load_volume(layout, name)
    paths = [directory / f"z{z:05d}.tif" for z in range(volume.shape[0])]
    if not all(p.exists() for p in paths):
        directory.mkdir(parents=True, exist_ok=True)
        for path, plane in zip(paths, volume, strict=True):
            tifffile.imwrite(path, plane)
    return paths


def load_volume(layout: Layout, name: str) -> npt.NDArray[Any]:
    """The volume ``name`` fully in memory (not memory-mapped, so no page faults are timed)."""
    volume: npt.NDArray[Any] = np.load(layout.data(name))
    return volume


def tiled_volume(layout: Layout, name: str, size: int) -> npt.NDArray[Any]:
    """The volume ``name`` repeated along every axis and cut to a cube of edge ``size``."""
    volume = load_volume(layout, name)
    reps = tuple(-(-size // n) for n in volume.shape)
    return np.ascontiguousarray(np.tile(volume, reps)[(slice(0, size),) * volume.ndim])


def _rng(plan: Plan, purpose: str, rep: int) -> np.random.Generator:
    """A generator for one purpose and repetition: the same for every system."""
    return np.random.default_rng([plan.seed, rep, *purpose.encode()])


def box_of_chunk(plan: Plan, index: tuple[int, ...]) -> Box:
    """The voxels of the chunk at grid position ``index``."""
    return tuple(slice(i * plan.chunk, (i + 1) * plan.chunk) for i in index)


def aligned_boxes(plan: Plan, count: int, purpose: str, rep: int) -> list[Box]:
    """``count`` random whole chunks (64³ chunk-aligned boxes), repeats allowed."""
    grid = plan.size // plan.chunk
    indices = _rng(plan, purpose, rep).integers(0, grid, size=(count, 3))
    return [box_of_chunk(plan, tuple(int(i) for i in row)) for row in indices]


def distinct_chunks(plan: Plan, size: int, count: int, purpose: str, rep: int) -> list[Box]:
    """``count`` different whole chunks of a cube of edge ``size``."""
    grid = size // plan.chunk
    picked = _rng(plan, purpose, rep).choice(grid**3, size=count, replace=False)
    return [box_of_chunk(plan, tuple(int(i) for i in np.unravel_index(flat, (grid,) * 3)))
            for flat in picked]


def unaligned_boxes(plan: Plan, edge: int, count: int, purpose: str, rep: int) -> list[Box]:
    """``count`` random ``edge``³ boxes at any voxel offset inside the volume."""
    if edge > plan.size:
        raise ValueError(f"a {edge}³ box does not fit in a {plan.size}³ volume")
    starts = _rng(plan, purpose, rep).integers(0, plan.size - edge + 1, size=(count, 3))
    return [tuple(slice(int(s), int(s) + edge) for s in row) for row in starts]


def random_blocks(plan: Plan, edge: int, count: int, dtype: np.dtype[Any], purpose: str,
                  rep: int) -> list[npt.NDArray[Any]]:
    """``count`` blocks of random values, ``edge``³ each, to write."""
    rng = _rng(plan, purpose + "-values", rep)
    return [rng.integers(0, 256, size=(edge,) * 3).astype(dtype) for _ in range(count)]
