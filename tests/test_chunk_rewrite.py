"""Small edits re-encode only the blosc blocks they touch, and store the bytes a full
encode stores.

``ChunkCodec.merge`` (the fast path's read-modify-write) hands a small edit of a blosc
chunk to :func:`diced.chunk_blocks.rewrite_planes`, which decodes and compresses only the
blocks holding the edited planes and copies the others' streams. Content addressing needs
the result to be byte for byte what compressing the whole edited chunk gives (equal
chunks, equal digests), so the oracle here is numcodecs' full encode of numpy's edit. The
tests also check that the splice is taken where it should be (uint8, zstd), so a path that
always declined would fail them.
"""

from __future__ import annotations

import struct
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from _oracle import assert_same, scratch_repo

import diced.chunkio
from diced.chunk_blocks import rewrite_planes
from diced.chunkio import ChunkCodec
from diced.repo import default_compressor

CHUNK = (64, 64, 64)


def _image(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "uint8"
           ) -> np.ndarray:
    """Chunk data like the benchmark's image (a few grey levels), or smooth ramps."""
    if rng.random() < 0.6:
        data = rng.integers(0, 8, shape) * 30
    else:
        data = np.cumsum(rng.integers(0, 2, shape), axis=0)
    return np.ascontiguousarray(data.astype(dtype))


def _box(rng: np.random.Generator, shape: tuple[int, ...], most: int) -> tuple[slice, ...]:
    lo = [int(rng.integers(0, n)) for n in shape]
    return tuple(slice(a, int(rng.integers(a + 1, min(n, a + most) + 1)))
                 for a, n in zip(lo, shape, strict=True))


class _Spliced:
    """Counts ``rewrite_planes`` calls that spliced (returned a frame)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = diced.chunkio.rewrite_planes

        def spy(*args: Any) -> Any:
            result = real(*args)
            self.count += result is not None
            return result

        monkeypatch.setattr(diced.chunkio, "rewrite_planes", spy)


@pytest.mark.parametrize("seed", range(4))
def test_a_small_edit_stores_what_a_full_encode_stores(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    spliced = _Spliced(monkeypatch)
    rng = np.random.default_rng(seed)
    for _ in range(60):
        dtype = str(rng.choice(["uint8", "uint8", "int8", "uint16", "float32"]))
        shape = CHUNK if rng.random() < 0.5 else tuple(
            int(rng.choice([8, 16, 32, 64])) for _ in range(int(rng.integers(2, 4))))
        blosc = numcodecs.Blosc(
            cname=str(rng.choice(["zstd", "zstd", "lz4"])), clevel=int(rng.choice([1, 1, 5])),
            shuffle=int(rng.choice([0, 1, 2])), blocksize=int(rng.choice([0, 0, 1024, 4096])),
            typesize=np.dtype(dtype).itemsize)
        codec = ChunkCodec(shape, np.dtype(dtype), np.array(0, dtype), blosc)
        chunk = _image(rng, shape, dtype)
        current = codec.encode(chunk)
        box = _box(rng, shape, 20)
        if rng.random() < 0.3:  # an integer index on the first axis
            box = (box[0].start, *box[1:])
        part = _image(rng, chunk[box].shape, dtype) + 1  # never all fill value
        chunk[box] = part
        assert codec.merge(current, box, part) == codec.encode(chunk)
    assert spliced.count > 5, "small edits were never spliced"


def test_edits_of_the_benchmark_kind_are_spliced_in_a_third_of_the_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10³ edit of a 64³ uint8 chunk touches 2-3 of its 8 blocks: always spliced."""
    spliced = _Spliced(monkeypatch)
    rng = np.random.default_rng(9)
    codec = ChunkCodec(CHUNK, np.dtype("uint8"), np.array(0, "uint8"),
                       numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=1))
    for n in range(40):
        chunk = _image(rng, CHUNK)
        start = [int(rng.integers(0, 55)) for _ in range(3)]
        box = tuple(slice(s, s + 10) for s in start)
        part = rng.integers(1, 256, (10, 10, 10)).astype("uint8")
        current = codec.encode(chunk)
        chunk[box] = part
        assert codec.merge(current, box, part) == codec.encode(chunk)
        assert spliced.count == n + 1


def test_writing_the_fill_value_over_the_last_data_leaves_no_chunk() -> None:
    codec = ChunkCodec(CHUNK, np.dtype("uint8"), np.array(0, "uint8"),
                       numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=1))
    chunk = np.zeros(CHUNK, "uint8")
    chunk[20:25, 3:9, 40:44] = 7
    current = codec.encode(chunk)
    box = (slice(18, 26), slice(0, 10), slice(40, 50))
    assert codec.merge(current, box, np.zeros((8, 10, 10), "uint8")) is None
    # The same edit with one non-zero voxel left keeps a chunk, equal to a full encode.
    part = np.zeros((8, 10, 10), "uint8")
    part[4, 5, 2] = 1
    chunk[box] = part
    assert codec.merge(current, box, part) == codec.encode(chunk)


def _swap_first_blocks(frame: bytes) -> bytes:
    """The same chunk with its first two blocks' streams stored in the other order, as
    blosc's own threads may store them (valid: every block's start is recorded)."""
    nblocks = -(-struct.unpack_from("<i", frame, 4)[0] // struct.unpack_from("<i", frame, 8)[0])
    starts = list(struct.unpack_from(f"<{nblocks}i", frame, 16))
    first, second = frame[starts[0]:starts[1]], frame[starts[1]:starts[2]]
    body = second + first + frame[starts[2]:]
    starts[0], starts[1] = starts[0] + len(second), starts[0]
    return frame[:16] + struct.pack(f"<{nblocks}i", *starts) + body


def test_a_frame_whose_blocks_lie_out_of_order_is_encoded_whole() -> None:
    blosc = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=1)
    codec = ChunkCodec(CHUNK, np.dtype("uint8"), np.array(0, "uint8"), blosc)
    chunk = _image(np.random.default_rng(4), CHUNK)
    shuffled = _swap_first_blocks(codec.encode(chunk))  # type: ignore[arg-type]
    np.testing.assert_array_equal(codec.decode(shuffled), chunk)  # still a valid frame
    assert rewrite_planes(shuffled, CHUNK, chunk.dtype, 1, 3, lambda p, at: None,
                          codec._compress_blocks) is None
    box = (slice(1, 3), slice(0, 5), slice(0, 5))
    part = np.full((2, 5, 5), 9, "uint8")
    chunk[box] = part
    assert codec.merge(shuffled, box, part) == codec.encode(chunk)


def test_an_edit_that_makes_a_block_incompressible_is_encoded_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Noise over a whole block makes blosc store it raw; whether it would do the same in
    the whole frame depends on room left there, so the splice declines."""
    spliced = _Spliced(monkeypatch)
    rng = np.random.default_rng(8)
    codec = ChunkCodec(CHUNK, np.dtype("uint8"), np.array(0, "uint8"),
                       numcodecs.Blosc(cname="zstd", clevel=1, shuffle=1, typesize=1))
    chunk = _image(rng, CHUNK)
    current = codec.encode(chunk)
    box = (slice(8, 16), slice(None), slice(None))  # exactly the second block
    part = rng.integers(1, 256, (8, 64, 64)).astype("uint8")
    chunk[box] = part
    assert codec.merge(current, box, part) == codec.encode(chunk)
    assert spliced.count == 0
    # A chunk that is noise all over is stored uncompressed: also encoded whole.
    noise = rng.integers(1, 256, CHUNK).astype("uint8")
    stored = codec.encode(noise)
    noise[3:5, 3:5, 3:5] = 1
    assert codec.merge(stored, (slice(3, 5), slice(3, 5), slice(3, 5)),
                       np.ones((2, 2, 2), "uint8")) == codec.encode(noise)


def test_the_fast_path_and_zarr_store_the_same_chunks_after_small_edits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Random small writes through ``arr[...]`` (spliced) and ``arr.zarr[...]`` (zarr's
    codecs, whole chunks): the same voxels as numpy, and the same digests."""
    spliced = _Spliced(monkeypatch)
    rng = np.random.default_rng(21)
    volume = _image(rng, (128, 64, 96))
    with scratch_repo() as repo:
        arrays = []
        for name in ("fast", "via_zarr"):
            zarr.create_array(repo.zarr_store(), name=name, shape=volume.shape,
                              dtype="uint8", chunks=CHUNK, fill_value=0,
                              compressors=default_compressor())
            arrays.append(repo.get_array(name))
        fast, via_zarr = arrays
        fast[...] = volume
        via_zarr.zarr[...] = volume
        for _ in range(30):
            box = _box(rng, volume.shape, 14)
            part = rng.integers(0, 256, volume[box].shape).astype("uint8")
            volume[box] = part
            fast[box] = part
            via_zarr.zarr[box] = part
        assert_same(fast[...], volume)
        assert_same(via_zarr[...], volume)
        assert fast._access.stored() == via_zarr._access.stored()
    assert spliced.count > 10
