"""Voxel-level comparison and three-way merging of whole stored chunks.

The versioning core compares and merges versions by chunk digest; where a chunk differs
it needs this module, which knows codecs: :class:`ChunkCoder` decodes and encodes any
array's stored chunks (diced's fast path where the codec chain allows, zarr's codec
pipeline otherwise: sharded, JPEG, anything), :func:`voxel_change` counts the voxels two
versions of a chunk differ in, and :func:`merge_chunk` folds several versions of a chunk
into one, voxel by voxel. Voxels are compared bit for bit (so ``NaN`` equals ``NaN`` and
``-0.0`` differs from ``0.0``, exactly as chunk digests do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from zarr.core.array_spec import ArrayConfig
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

from diced.chunk_access import storage_grid
from diced.chunkio import ChunkCodec
from diced.errors import InvalidInputError, MergeConflict
from diced.versioning.diff import VoxelChange

__all__ = ["ChunkCoder", "ConflictFunction", "MergedChunk", "merge_chunk", "voxel_change"]

Coords = tuple[int, ...]
Block = npt.NDArray[Any]
#: A conflict resolver: ``(array, chunk coordinates, base, ours, theirs) -> block``.
ConflictFunction = Callable[[str, Coords, Block, Block, Block], Any]


class ChunkCoder:
    """Decode and encode whole stored chunks (storage units: shards when sharded) of one
    array, described by its zarr v3 metadata."""

    def __init__(self, zarr_meta: Mapping[str, Any]) -> None:
        meta = ArrayV3Metadata.from_dict(dict(zarr_meta))
        self.shape: tuple[int, ...] = tuple(meta.shape)
        self.unit, self.grid = storage_grid(meta)
        self.dtype: np.dtype[Any] = meta.data_type.to_native_dtype()
        self.fill = np.array(meta.fill_value, dtype=self.dtype)
        self._fast = ChunkCodec.for_metadata(meta)
        self._pipeline = BatchedCodecPipeline.from_codecs(meta.codecs)
        self._spec = meta.get_chunk_spec((0,) * len(self.shape),
                                         ArrayConfig.from_dict({}), default_buffer_prototype())

    def decode(self, data: bytes | None) -> Block:
        """A new, writable array of the chunk's values (the fill value for ``None``)."""
        if data is None:
            return np.full(self.unit, self.fill, dtype=self.dtype)
        if self._fast is not None:
            return self._fast.decode(data)
        buffer = default_buffer_prototype().buffer.from_bytes(data)
        decoded = next(iter(sync(self._pipeline.decode_batch([(buffer, self._spec)]))))
        assert decoded is not None
        return np.array(decoded.as_numpy_array(), dtype=self.dtype)

    def encode(self, chunk: Block) -> bytes | None:
        """The stored bytes of ``chunk``; ``None`` when it is the fill value everywhere."""
        if self._fast is not None:
            return self._fast.encode(chunk)
        if not _differs(chunk, np.broadcast_to(self.fill, chunk.shape)).any():
            return None
        value = default_buffer_prototype().nd_buffer.from_numpy_array(
            np.ascontiguousarray(chunk, dtype=self.dtype))
        encoded = next(iter(sync(self._pipeline.encode_batch([(value, self._spec)]))))
        return None if encoded is None else bytes(encoded.to_bytes())

    def inside(self, coords: Coords, shape: Sequence[int] | None = None) -> tuple[slice, ...]:
        """The part of chunk ``coords`` that lies inside the array (of ``shape``)."""
        shape = self.shape if shape is None else shape
        return tuple(slice(0, max(0, min(u, n - c * u)))
                     for c, u, n in zip(coords, self.unit, shape, strict=True))

    def origin(self, coords: Coords) -> tuple[int, ...]:
        """The first voxel of chunk ``coords``."""
        return tuple(c * u for c, u in zip(coords, self.unit, strict=True))


def _differs(x: Block, y: Block) -> npt.NDArray[np.bool_]:
    """Where ``x`` and ``y`` differ, bit for bit (same dtype) or by value (otherwise)."""
    if x.dtype != y.dtype:
        return np.asarray(x != y)
    bits = np.dtype(f"u{x.dtype.itemsize}")
    return np.asarray(x.view(bits) != y.view(bits))


def _box(mask: npt.NDArray[np.bool_], origin: Coords) -> tuple[tuple[int, int], ...] | None:
    if not mask.any():
        return None
    box = []
    for axis, start in enumerate(origin):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append((start + int(hits[0]), start + int(hits[-1]) + 1))
    return tuple(box)


def voxel_change(old: ChunkCoder | None, old_data: bytes | None, new: ChunkCoder | None,
                 new_data: bytes | None, coords: Coords) -> VoxelChange:
    """How chunk ``coords`` differs between two versions (a coder is ``None`` where the
    array does not exist: there every voxel is the other version's fill value)."""
    coder = new if new is not None else old
    assert coder is not None
    if old is not None and new is not None and (old.unit != new.unit or old.dtype != new.dtype):
        # A different array under the same name: the chunk is a different region.
        region = new.inside(coords)
        count = int(np.prod([s.stop for s in region]))
        return VoxelChange(count, tuple((o, o + s.stop) for o, s in
                                        zip(new.origin(coords), region, strict=True))
                           if count else None)
    shapes = [c.shape for c in (old, new) if c is not None]
    union = tuple(max(n) for n in zip(*shapes, strict=True))
    values = []
    for side, data in ((old, old_data), (new, new_data)):
        if side is None:
            values.append(coder.decode(None))
            continue
        block = side.decode(data)
        outside = np.ones(block.shape, dtype=bool)
        outside[side.inside(coords)] = False
        block[outside] = side.fill  # beyond that version's shape: not part of its array
        values.append(block)
    mask = _differs(values[0], values[1])[coder.inside(coords, union)]
    return VoxelChange(int(mask.sum()), _box(mask, coder.origin(coords)))


@dataclass(frozen=True)
class MergedChunk:
    """The outcome of :func:`merge_chunk`.

    Either ``reuse`` is True and ``digest`` names what the chunk becomes (an existing
    blob, or ``None`` for the fill value), or ``data`` holds new encoded bytes to store.
    ``conflict`` describes the voxels left unresolved (``on_conflict="fail"``).
    """

    reuse: bool
    digest: bytes | None = None
    data: bytes | None = None
    conflict: MergeConflict | None = None


def _resolved(fn: ConflictFunction, array: str, coords: Coords, base: Block, ours: Block,
              theirs: Block, coder: ChunkCoder) -> Block:
    block = np.asarray(fn(array, coords, base.copy(), ours.copy(), theirs.copy()))
    if block.shape != base.shape:
        raise InvalidInputError(
            f"the conflict function returned a block of shape {block.shape} for chunk "
            f"{coords} of array {array!r}; it must return the whole chunk, shape {base.shape}")
    if not np.can_cast(block.dtype, coder.dtype, casting="same_kind"):
        raise InvalidInputError(
            f"the conflict function returned {block.dtype} values for array {array!r} of "
            f"{coder.dtype}; return values of the array's dtype")
    return block.astype(coder.dtype, copy=False)


def merge_chunk(coder: ChunkCoder, array: str, coords: Coords, base: bytes | None,
                sides: Sequence[bytes | None], read: Callable[[bytes], bytes],
                on_conflict: str | ConflictFunction, encode: bool = True) -> MergedChunk:
    """Merge chunk ``coords`` of ``array`` from the digests of its ``sides`` (in order)
    against ``base``, voxel by voxel; ``read(digest)`` returns a blob's bytes.

    Sides are folded in order: a voxel changed (from the base) on one side only takes that
    side's value; changed on several to the same value, that value; to different values,
    it is a conflict, resolved by ``on_conflict``: ``"ours"`` keeps the value of the
    earlier side, ``"theirs"`` takes the later one's, a function returns the block whose
    values the conflicting voxels take, and ``"fail"`` leaves them reported in
    :attr:`MergedChunk.conflict`. Voxels outside the array's shape never conflict.

    A merged chunk equal to one of the versions (or the base) reuses its blob. With
    ``encode=False`` nothing is encoded (a dry run that only finds conflicts).
    """
    cache: dict[bytes | None, Block] = {}

    def values(digest: bytes | None) -> Block:
        if digest not in cache:
            cache[digest] = coder.decode(None if digest is None else read(digest))
        return cache[digest]

    origin = values(base)
    inside = np.zeros(coder.unit, dtype=bool)
    inside[coder.inside(coords)] = True
    clashes = np.zeros(coder.unit, dtype=bool)
    acc = origin
    for digest in sides:
        side = values(digest)
        changed = _differs(side, origin)
        clash = changed & _differs(acc, origin) & _differs(side, acc) & inside
        merged = np.where(changed, side, acc)
        if clash.any():
            if on_conflict == "ours":
                merged[clash] = acc[clash]
            elif callable(on_conflict):
                merged[clash] = _resolved(on_conflict, array, coords, origin, acc, side,
                                          coder)[clash]
            elif on_conflict == "fail":
                clashes |= clash
        acc = merged
    conflict = None
    if clashes.any():
        conflict = MergeConflict("voxels", array, coords, int(clashes.sum()),
                                 _box(clashes, coder.origin(coords)))
    if not encode:
        return MergedChunk(False, conflict=conflict)
    for digest in (*sides, base):
        if not _differs(acc, values(digest)).any():
            return MergedChunk(True, digest, conflict=conflict)
    encoded = coder.encode(acc)
    return MergedChunk(encoded is None, None, encoded, conflict)
