"""Decode only the blosc blocks of a chunk that a read needs; re-encode only those an
edit changes.

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

:func:`rewrite_planes` does the same for a small read-modify-write: it decodes the blocks
an edit touches, compresses them again and splices their streams between the others',
giving the bytes a whole encode gives (or ``None``: encode the whole chunk).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import numcodecs
import numpy as np
import numpy.typing as npt

__all__ = ["decode_planes", "rewrite_planes"]

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


class _Frame(NamedTuple):
    """A blosc frame's header fields, checked against the chunk it should hold."""

    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int
    nblocks: int


def _frame(data: bytes | memoryview, shape: tuple[int, ...], dtype: np.dtype[Any]
           ) -> _Frame | None:
    """The header of ``data`` when this module reads its blocks (see the module's doc)."""
    if len(data) < _HEADER.size:
        return None
    version, _, flags, typesize, nbytes, blocksize, cbytes = _HEADER.unpack_from(data)
    plane = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    if (version not in (1, 2) or cbytes != len(data) or blocksize <= 0
            or nbytes != plane * shape[0] or flags & _UNHANDLED):
        return None
    return _Frame(flags, typesize, nbytes, blocksize, cbytes, -(-nbytes // blocksize))


def _blocks_readable(frame: _Frame) -> bool:
    """Whether each block is one zstd stream (or raw) of the chunk's own bytes."""
    one_stream = frame.typesize == 1 or frame.flags & _DONT_SPLIT
    return (frame.flags >> 5 == _ZSTD and bool(one_stream)
            and not (frame.flags & _SHUFFLE and frame.typesize > 1))


def _decode_blocks(data: bytes, frame: _Frame, lo: int, hi: int, out: memoryview) -> bool:
    """Decode blocks ``lo:hi`` of ``data`` into ``out``; ``False`` if the frame is bad."""
    bstarts = struct.unpack_from(f"<{frame.nblocks}i", data, _HEADER.size)
    source, cbytes, blocksize = memoryview(data), frame.cbytes, frame.blocksize
    # Consecutive zstd blocks are decoded by one call: zstd decodes concatenated frames
    # in turn, straight into ``out``. One call per block cost a release and re-take of
    # the GIL each, and the reading threads queued on it.
    run: list[memoryview] = []
    run_at = run_end = 0

    def flush() -> bool:
        if run:
            try:
                done = _ZSTD_CODEC.decode(b"".join(run), out=out[run_at:run_end])
            except (RuntimeError, ValueError):  # not zstd frames, or the wrong sizes
                return False
            if len(done) != run_end - run_at:
                return False
            run.clear()
        return True

    for block in range(lo, hi):
        size = min(blocksize, frame.nbytes - block * blocksize)
        pos = bstarts[block]
        if not _HEADER.size <= pos <= cbytes - _INT.size:
            return False
        (csize,) = _INT.unpack_from(data, pos)
        at = (block - lo) * blocksize
        if not 0 < csize <= cbytes - pos - _INT.size:
            return False
        stream = source[pos + 4:pos + 4 + csize]
        if csize == size:  # stored raw: blosc found the block incompressible
            if not flush():
                return False
            out[at:at + size] = stream
            continue
        if not run:
            run_at = at
        run.append(stream)
        run_end = at + size
    return flush()


def decode_planes(data: bytes, shape: tuple[int, ...], dtype: np.dtype[Any],
                  first: int, stop: int) -> npt.NDArray[Any] | None:
    """Planes ``first:stop`` (along axis 0) of the C-order chunk blosc-encoded in ``data``.

    Returns an array of shape ``(stop - first, *shape[1:])`` (it may be read-only), or
    ``None`` when the frame is not one this module decodes in part, or when the planes
    span nearly every block (a full decode is then as cheap): decode the whole chunk then.
    """
    frame = _frame(data, shape, dtype)
    if frame is None:
        return None
    plane = frame.nbytes // shape[0] if shape[0] else 0
    start, end = first * plane, stop * plane
    if frame.flags & _MEMCPYED:  # stored uncompressed after the header
        if frame.cbytes != _HEADER.size + frame.nbytes:
            return None
        raw = np.frombuffer(data, np.uint8, end - start, _HEADER.size + start)
        return raw.view(dtype).reshape((stop - first, *shape[1:]))
    lo, hi = start // frame.blocksize, -(-end // frame.blocksize)
    if (hi - lo) > _WORTH_IT * frame.nblocks or not _blocks_readable(frame):
        return None
    out = bytearray((hi - lo) * frame.blocksize)
    if not _decode_blocks(data, frame, lo, hi, memoryview(out)):
        return None
    at = start - lo * frame.blocksize
    planes = np.frombuffer(out, dtype, (end - start) // dtype.itemsize, at)
    return planes.reshape((stop - first, *shape[1:]))


def _stream_sizes(data: bytes | memoryview, frame: _Frame) -> list[int] | None:
    """Each block's bytes (its stream and the stream's 4-byte length), if the blocks lie
    in order, back to back.

    That is how blosc lays out a frame it compresses in one thread (diced's case: zarr
    turns numcodecs' blosc threads off); a frame whose blocks lie otherwise is declined.
    """
    bstarts = struct.unpack_from(f"<{frame.nblocks}i", data, _HEADER.size)
    pos = _HEADER.size + _INT.size * frame.nblocks
    sizes = []
    for start in bstarts:
        if start != pos or pos + _INT.size > len(data):
            return None
        size = _INT.size + _INT.unpack_from(data, pos)[0]
        pos += size
        sizes.append(size)
    return sizes if pos == frame.cbytes else None


def rewrite_planes(data: bytes, shape: tuple[int, ...], dtype: np.dtype[Any],
                   first: int, stop: int, edit: Callable[[npt.NDArray[Any], int], None],
                   compress: Callable[[bytes, int], bytes]) -> bytes | None:
    """The frame of the chunk in ``data`` after ``edit`` changed planes ``first:stop``.

    Only the blocks holding those planes are decoded, passed to ``edit(planes, at)``
    (``planes``: a writable array of whole planes starting at plane ``at`` of the chunk)
    and compressed again, by ``compress(raw, blocksize)`` (blosc with the chunk's codec
    and that block size); the other blocks' streams are copied. The result is byte for
    byte what compressing the whole edited chunk gives, so equal chunks keep equal
    digests. Returns ``None`` (re-encode the whole chunk) for a frame this module does
    not read, blocks that do not hold whole planes, an edit touching nearly every block,
    or whenever the copied layout might differ from blosc's own: a recompressed block
    stored raw, or a frame that ends up close to the size of its raw bytes.
    """
    frame = _frame(data, shape, dtype)
    if frame is None or frame.flags & _MEMCPYED or not _blocks_readable(frame):
        return None
    plane = frame.nbytes // shape[0]
    blocksize = frame.blocksize
    if blocksize % plane or frame.nbytes % blocksize:
        return None
    lo, hi = first * plane // blocksize, -(-stop * plane // blocksize)
    if (hi - lo) > _WORTH_IT * frame.nblocks:
        return None
    sizes = _stream_sizes(data, frame)
    if sizes is None:
        return None
    raw = bytearray((hi - lo) * blocksize)
    if not _decode_blocks(data, frame, lo, hi, memoryview(raw)):
        return None
    per_block = blocksize // plane
    planes = np.frombuffer(raw, dtype).reshape(((hi - lo) * per_block, *shape[1:]))
    edit(planes, lo * per_block)
    sub = compress(bytes(raw), blocksize)
    part = _frame(sub, planes.shape, dtype)
    if (part is None or part.flags != frame.flags or part.typesize != frame.typesize
            or part.blocksize != blocksize or part.nblocks != hi - lo):
        return None
    part_sizes = _stream_sizes(sub, part)
    if part_sizes is None or _INT.size + blocksize in part_sizes:
        return None  # a raw block: blosc may have stored it so for lack of room
    new_sizes = [*sizes[:lo], *part_sizes, *sizes[hi:]]
    head = _HEADER.size + _INT.size * frame.nblocks
    cbytes = head + sum(new_sizes)
    # Each block's stream must end within the raw size plus the header, or blosc would
    # have stored it raw (or the whole chunk uncompressed): then let blosc decide.
    if cbytes > frame.nbytes + _HEADER.size:
        return None
    header = bytearray(data[:_HEADER.size])
    _INT.pack_into(header, 12, cbytes)
    bstarts = np.cumsum([head, *new_sizes[:-1]]).astype("<i4")
    return b"".join((header, bstarts.tobytes(),
                     data[head:head + sum(sizes[:lo])],  # the blocks before, as they are
                     sub[_HEADER.size + _INT.size * part.nblocks:],  # the edited blocks
                     data[head + sum(sizes[:hi]):]))  # the blocks after
