"""Decode only the blosc blocks of a chunk that a read needs.

A blosc chunk is a sequence of independently compressed blocks (32 KiB for a 64³ uint8
chunk with zstd, i.e. 8 planes of 64×64), and the format stores where each block starts.
A read of a box that is not chunk-aligned needs, in each chunk it touches, only a range of
planes along the first axis: on average two thirds of the blocks for the 100³ boxes of the
benchmark. Decoding just those blocks is what ``blosc_getitem`` does in C; numcodecs does
not expose it, so this module reads the documented blosc 1 frame layout
(https://github.com/Blosc/c-blosc/blob/main/README_CHUNK_FORMAT.rst) and decompresses the
blocks with numcodecs' zstd.

It handles the frames numcodecs' ``Blosc`` writes for one-byte items (where byte shuffle
changes nothing) or unshuffled, unsplit blocks, compressed with zstd or stored raw. For
anything else (bitshuffle, shuffled multi-byte items, other compressors, an unknown header)
:func:`decode_planes` returns ``None`` and the caller decodes the whole chunk, so a frame
this module does not understand costs a full decode, never a wrong answer.
"""

from __future__ import annotations

import struct
from typing import Any

import numcodecs
import numpy as np
import numpy.typing as npt

__all__ = ["decode_planes"]

# version, versionlz, flags, typesize, nbytes, blocksize, cbytes
_HEADER = struct.Struct("<BBBBiii")
_INT = struct.Struct("<i")
_SHUFFLE, _MEMCPYED, _DONT_SPLIT = 0x1, 0x2, 0x10
_UNHANDLED = 0x4 | 0x8  # bitshuffle, and a bit blosc 1 reserves (delta in blosc 2)
_ZSTD = 4  # compressor code in the flags' top three bits
_ZSTD_CODEC = numcodecs.Zstd()
# Below this share of blocks, a partial decode wins: it pays a little Python per block
# that a full decode (one C call) does not.
_WORTH_IT = 0.85


def decode_planes(data: bytes, shape: tuple[int, ...], dtype: np.dtype[Any],
                  first: int, stop: int) -> npt.NDArray[Any] | None:
    """Planes ``first:stop`` (along axis 0) of the C-order chunk blosc-encoded in ``data``.

    Returns an array of shape ``(stop - first, *shape[1:])`` (it may be read-only), or
    ``None`` when the frame is not one this module decodes in part, or when the planes
    span nearly every block (a full decode is then as cheap): decode the whole chunk then.
    """
    if len(data) < _HEADER.size:
        return None
    version, _, flags, typesize, nbytes, blocksize, cbytes = _HEADER.unpack_from(data)
    plane = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    if (version not in (1, 2) or cbytes != len(data) or blocksize <= 0
            or nbytes != plane * shape[0] or flags & _UNHANDLED):
        return None
    start, end = first * plane, stop * plane
    if flags & _MEMCPYED:  # stored uncompressed after the header
        if cbytes != _HEADER.size + nbytes:
            return None
        raw = np.frombuffer(data, np.uint8, end - start, _HEADER.size + start)
        return raw.view(dtype).reshape((stop - first, *shape[1:]))
    nblocks = -(-nbytes // blocksize)
    lo, hi = start // blocksize, -(-end // blocksize)
    if (hi - lo) > _WORTH_IT * nblocks or flags >> 5 != _ZSTD:
        return None
    one_stream = typesize == 1 or flags & _DONT_SPLIT
    if not one_stream or (flags & _SHUFFLE and typesize > 1):
        return None
    bstarts = struct.unpack_from(f"<{nblocks}i", data, _HEADER.size)
    out = bytearray((hi - lo) * blocksize)
    source, target = memoryview(data), memoryview(out)
    # Consecutive zstd blocks are decoded by one call: zstd decodes concatenated frames
    # in turn, straight into ``out``. One call per block cost a release and re-take of
    # the GIL each, and the reading threads queued on it.
    run: list[memoryview] = []
    run_at = run_end = 0

    def flush() -> bool:
        if run:
            try:
                done = _ZSTD_CODEC.decode(b"".join(run), out=target[run_at:run_end])
            except (RuntimeError, ValueError):  # not zstd frames, or the wrong sizes
                return False
            if len(done) != run_end - run_at:
                return False
            run.clear()
        return True

    for block in range(lo, hi):
        size = min(blocksize, nbytes - block * blocksize)
        pos = bstarts[block]
        if not _HEADER.size <= pos <= cbytes - _INT.size:
            return None
        (csize,) = _INT.unpack_from(data, pos)
        at = (block - lo) * blocksize
        if not 0 < csize <= cbytes - pos - _INT.size:
            return None
        stream = source[pos + 4:pos + 4 + csize]
        if csize == size:  # stored raw: blosc found the block incompressible
            if not flush():
                return None
            target[at:at + size] = stream
            continue
        if not run:
            run_at = at
        run.append(stream)
        run_end = at + size
    if not flush():
        return None
    at = start - lo * blocksize
    planes = np.frombuffer(out, dtype, (end - start) // dtype.itemsize, at)
    return planes.reshape((stop - first, *shape[1:]))
