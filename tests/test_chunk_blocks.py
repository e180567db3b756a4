"""Partial blosc decoding (diced.chunk_blocks) against numcodecs' full decode, and the fast
read path that uses it against numpy.

``decode_planes`` may decline a frame (``None``: the caller decodes it whole) but must
never return planes that differ from the full decode. The tests also check that it does
decode in part where it is meant to (uint8, zstd), so a path that always declined would
fail them.
"""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import pytest

import diced.chunkio
from diced import DicedStore
from diced.chunk_blocks import decode_planes

DTYPES = ["uint8", "int8", "uint16", "uint64", "float32"]


def _chunk(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Chunk data that compresses somewhat (smooth plus noise) or not at all (noise)."""
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if rng.random() < 0.3:
        noise = rng.integers(0, 256, size=shape)
    else:
        noise = np.cumsum(rng.integers(-2, 3, size=shape), axis=-1)
    data = noise if info is None else np.clip(noise, info.min, info.max)
    return np.ascontiguousarray(data.astype(dtype))


@pytest.mark.parametrize("seed", range(6))
def test_decoded_planes_equal_the_full_decode(seed: int) -> None:
    rng = np.random.default_rng(seed)
    partial = 0
    for _ in range(60):
        dtype = str(rng.choice(DTYPES))
        ndim = int(rng.integers(2, 5))
        shape = tuple(int(rng.integers(1, 40)) for _ in range(ndim))
        codec = numcodecs.Blosc(
            cname=str(rng.choice(["zstd", "zstd", "lz4", "blosclz"])),
            clevel=int(rng.choice([0, 1, 5])), shuffle=int(rng.choice([0, 1, 2])),
            blocksize=int(rng.choice([0, 256, 1024, 4096])),
            typesize=np.dtype(dtype).itemsize)
        chunk = _chunk(rng, dtype, shape)
        data = bytes(codec.encode(chunk))
        first = int(rng.integers(0, shape[0]))
        stop = int(rng.integers(first + 1, shape[0] + 1))
        planes = decode_planes(data, shape, np.dtype(dtype), first, stop)
        if planes is not None:
            partial += 1
            assert planes.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(planes, chunk[first:stop])
    assert partial > 0, "no frame was decoded in part"


def test_a_uint8_zstd_chunk_is_decoded_in_part() -> None:
    rng = np.random.default_rng(7)
    chunk = _chunk(rng, "uint8", (64, 64, 64))
    codec = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=1)
    data = bytes(codec.encode(chunk))
    for first, stop in [(0, 1), (3, 20), (40, 64), (63, 64), (8, 16)]:
        planes = decode_planes(data, chunk.shape, chunk.dtype, first, stop)
        assert planes is not None, (first, stop)
        np.testing.assert_array_equal(planes, chunk[first:stop])
    # Nearly every block: a full decode is as cheap, so it declines.
    assert decode_planes(data, chunk.shape, chunk.dtype, 0, 63) is None


def test_runs_of_compressed_blocks_between_raw_ones_decode_in_place() -> None:
    # Blocks of 4 planes: noise planes make a block incompressible (blosc stores it raw),
    # smooth ones compressible, so one frame mixes raw blocks and runs of zstd frames.
    rng = np.random.default_rng(11)
    chunk = np.zeros((64, 32, 32), dtype="uint8")
    kinds = rng.permutation([0] * 8 + [1] * 8)
    for block, noisy in enumerate(kinds):
        planes = slice(4 * block, 4 * block + 4)
        chunk[planes] = (rng.integers(0, 256, (4, 32, 32)) if noisy
                         else np.cumsum(rng.integers(0, 2, (4, 32, 32)), axis=-1))
    data = bytes(numcodecs.Blosc(cname="zstd", clevel=1, shuffle=0,
                                 blocksize=4096).encode(chunk))
    decoded = 0
    for first in range(0, 64, 3):
        for stop in range(first + 1, 65, 5):
            planes = decode_planes(data, chunk.shape, chunk.dtype, first, stop)
            if planes is not None:
                decoded += 1
                np.testing.assert_array_equal(planes, chunk[first:stop])
    assert decoded > 100


def test_an_uncompressed_frame_is_sliced_without_decoding() -> None:
    chunk = np.random.default_rng(3).integers(0, 256, (16, 32, 32)).astype("uint8")
    data = bytes(numcodecs.Blosc(cname="zstd", clevel=0).encode(chunk))  # memcpyed
    planes = decode_planes(data, chunk.shape, chunk.dtype, 5, 9)
    assert planes is not None
    np.testing.assert_array_equal(planes, chunk[5:9])


@pytest.mark.parametrize("data", [b"", b"\x02\x01", b"not a blosc frame at all, no"])
def test_a_frame_it_does_not_know_is_declined(data: bytes) -> None:
    assert decode_planes(data, (4, 4), np.dtype("uint8"), 1, 2) is None


def test_a_truncated_frame_is_declined() -> None:
    chunk = _chunk(np.random.default_rng(5), "uint8", (32, 32, 32))
    data = bytes(numcodecs.Blosc(cname="zstd", clevel=1).encode(chunk))
    assert decode_planes(data[:-10], chunk.shape, chunk.dtype, 1, 3) is None


@pytest.mark.parametrize("offset", [-1, 3, 1 << 30])
def test_a_frame_with_a_block_offset_outside_it_is_declined(offset: int) -> None:
    chunk = _chunk(np.random.default_rng(6), "uint8", (64, 64, 64))
    data = bytearray(numcodecs.Blosc(cname="zstd", clevel=1).encode(chunk))
    data[16:20] = offset.to_bytes(4, "little", signed=True)  # the first block's start
    assert decode_planes(bytes(data), chunk.shape, chunk.dtype, 0, 2) is None


def test_a_memcpyed_frame_shorter_than_its_header_says_is_declined() -> None:
    chunk = np.zeros((16, 8, 8), "uint8")
    data = bytearray(numcodecs.Blosc(cname="zstd", clevel=0).encode(chunk))
    data[4:8] = (17 * 64).to_bytes(4, "little")  # claims 17 planes, holds 16
    assert decode_planes(bytes(data), (17, 8, 8), chunk.dtype, 15, 17) is None


@pytest.mark.parametrize("locked", [False, True])
def test_unaligned_reads_through_the_partial_decode_match_numpy(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, locked: bool) -> None:
    """The fast path's unaligned reads (open and locked node) against numpy."""
    used: list[bool] = []
    real = diced.chunkio.decode_planes

    def spy(*args: Any) -> Any:
        planes = real(*args)
        used.append(planes is not None)
        return planes

    monkeypatch.setattr(diced.chunkio, "decode_planes", spy)
    rng = np.random.default_rng(11)
    truth = np.cumsum(rng.integers(0, 3, (150, 100, 70)), axis=0).astype("uint8")
    with DicedStore(str(tmp_path)) as store:
        repo = store.create_repo("r")
        arr = repo.create_array("img", "uint8", shape=truth.shape, chunks=(64, 64, 64))
        arr[...] = truth
        if locked:
            repo.lock_node("data")
            arr = repo.get_array("img")
        for _ in range(40):
            lo = [int(rng.integers(0, n)) for n in truth.shape]
            box = tuple(slice(a, int(rng.integers(a + 1, n + 1)))
                        for a, n in zip(lo, truth.shape, strict=True))
            if rng.random() < 0.3:  # an integer index on the first axis drops it
                box = (lo[0], *box[1:])
            np.testing.assert_array_equal(arr[box], truth[box])
    assert any(used), "no read decoded in part"
