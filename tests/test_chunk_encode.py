"""Fill chunks are detected before encoding, bit for bit, the same on both write paths.

``ChunkCodec.encode`` returns ``None`` (store nothing) exactly when a chunk's bytes are
the fill value's everywhere; it checks that before compressing, because compressing a
chunk of zeros costs far more than scanning it. The oracle is numpy's bytes: ``-0.0`` is
not ``+0.0``, and a NaN is the fill only with the fill's payload. diced's zarr codec
pipeline (``arr.zarr``, ``repo.zarr_store()``) must store exactly the same chunks.
"""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from _oracle import assert_same, scratch_repo

from diced.chunkio import ChunkCodec

SHAPE = (16, 8, 32)
FILLS: list[tuple[str, Any]] = [
    ("uint8", 0), ("uint64", 0), ("uint64", 7), ("int16", -3), ("bool", False),
    ("float32", 0.0), ("float32", -0.0), ("float64", 2.5), ("float64", float("nan")),
    ("complex64", 0j), ("complex128", complex(0.0, -0.0)),
]


class _Spy:
    """A compressor that counts its encodes and otherwise is numcodecs' blosc."""

    def __init__(self, typesize: int) -> None:
        self.inner = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=typesize)
        self.encodes = 0

    def encode(self, buf: Any) -> bytes:
        self.encodes += 1
        return bytes(self.inner.encode(buf))

    def decode(self, buf: Any, out: Any = None) -> Any:
        return self.inner.decode(buf, out)


def _variants(rng: np.random.Generator, dtype: np.dtype[Any], fill: Any
              ) -> list[np.ndarray]:
    """Chunks that are fill everywhere, or nearly: one voxel changed at a random place."""
    full = np.full(SHAPE, fill, dtype=dtype)
    chunks = [full.copy()]
    for _ in range(6):
        chunk = full.copy()
        flat = chunk.reshape(-1)
        at = int(rng.integers(flat.size))
        if dtype.kind == "b":
            flat[at] = not flat[at]
        elif dtype.kind in "fc":
            flat[at] = rng.choice([0.0, -0.0, 1.5, np.nan])
        else:
            flat[at] = flat[at] + 1
        chunks.append(chunk)
    if dtype.kind in "fc":  # the other zero everywhere
        chunks.append(np.full(SHAPE, -0.0 if not np.signbit(np.real(fill)) else 0.0,
                              dtype=dtype))
    if dtype.kind == "c":  # a zero imaginary part of the other sign, in one voxel
        chunk = full.copy()
        chunk.reshape(-1)[int(rng.integers(chunk.size))] = complex(
            np.real(fill), 0.0 if np.signbit(np.imag(fill)) else -0.0)
        chunks.append(chunk)
    return chunks


@pytest.mark.parametrize(("dtype", "fill"), FILLS, ids=[f"{d}-{f}" for d, f in FILLS])
@pytest.mark.parametrize("seed", range(3))
def test_encode_stores_exactly_the_chunks_that_differ_from_the_fill_value(
        dtype: str, fill: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    spy = _Spy(dt.itemsize)
    codec = ChunkCodec(SHAPE, dt, np.array(fill, dtype=dt), spy)
    fill_bytes = np.full(SHAPE, fill, dtype=dt).tobytes()
    for chunk in _variants(rng, dt, fill):
        for view in (chunk, np.asfortranarray(chunk)[:, :, :]):  # contiguous and not
            before = spy.encodes
            encoded = codec.encode(view)
            if chunk.tobytes() == fill_bytes:
                assert encoded is None
                assert spy.encodes == before  # decided without compressing
            else:
                assert encoded is not None
                assert codec.decode(encoded).tobytes() == chunk.tobytes()


def test_a_chunk_with_data_only_in_its_middle_is_stored() -> None:
    dt = np.dtype("uint64")
    codec = ChunkCodec((64, 64, 64), dt, np.array(0, dtype=dt), None)
    for at in ((0, 0, 1), (31, 17, 5), (63, 63, 62)):
        chunk = np.zeros((64, 64, 64), dtype=dt)
        chunk[at] = 9
        encoded = codec.encode(chunk[:, :, :])
        assert encoded is not None
        assert np.frombuffer(encoded, dtype=dt).reshape(chunk.shape)[at] == 9
    assert codec.encode(np.zeros((64, 64, 64), dtype=dt)) is None


@pytest.mark.parametrize(("dtype", "fill"), FILLS, ids=[f"{d}-{f}" for d, f in FILLS])
def test_the_fast_path_and_zarr_store_the_same_chunks(dtype: str, fill: Any) -> None:
    rng = np.random.default_rng(5)
    dt = np.dtype(dtype)
    chunks = _variants(rng, dt, fill)
    volume = np.concatenate(chunks)  # one chunk per variant, stacked along axis 0
    with scratch_repo() as repo:
        for name in ("fast", "via_zarr"):
            zarr.create_array(repo.zarr_store(), name=name, shape=volume.shape, dtype=dt,
                              chunks=SHAPE, fill_value=fill)
        fast, via_zarr = repo.get_array("fast"), repo.get_array("via_zarr")
        fast[...] = volume  # whole chunks through the fast path
        via_zarr.zarr[...] = volume  # the same through zarr and diced's codec pipeline
        for _ in range(20):  # and partial writes, each path its own
            lo = int(rng.integers(0, volume.shape[0] - 1))
            length = int(rng.integers(1, min(SHAPE[0], volume.shape[0] - lo) + 1))
            box = (slice(lo, lo + length),)
            part = chunks[int(rng.integers(len(chunks)))][:length]
            volume[box] = part
            fast[box] = part
            via_zarr.zarr[box] = part
        assert_same(fast[...], volume)
        assert_same(via_zarr[...], volume)
        stored = [sorted(a._access.stored()) for a in (fast, via_zarr)]
        assert stored[0] == stored[1]
        expected = sorted((i, 0, 0) for i in range(len(chunks))
                          if volume[i * SHAPE[0]:(i + 1) * SHAPE[0]].tobytes()
                          != np.full(SHAPE, fill, dt).tobytes())
        assert stored[0] == expected
