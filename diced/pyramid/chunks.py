"""The chunks of pyramid levels: reading a region of one level, writing a chunk of the next.

Levels are read and written through :class:`~diced.chunk_access.ChunkAccess`, whole
chunks at a time and without the node-open check, because ``lock_node`` finishes a
pyramid after the node is sealed (no write can start then; see :mod:`diced.pyramid.kept`).
Chunks are encoded here: with diced's fast codec where the array's codec chain allows it,
otherwise with zarr's own codec pipeline, so any chain (JPEG, sharding...) works.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
from zarr.core.array_spec import ArrayConfig
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

from diced.chunk_access import ChunkAccess, metadata_of
from diced.chunkio import ChunkCodec
from diced.context import StoreContext
from diced.versioning.digest import digest
from diced.versioning.node import ArrayInfo, NodeView

__all__ = ["Level", "parent_chunks"]

Coords = tuple[int, ...]


class _ZarrCodec:
    """Whole-chunk encode and decode through zarr's codec pipeline (any codec chain)."""

    def __init__(self, meta: ArrayV3Metadata) -> None:
        prototype = default_buffer_prototype()
        self._prototype = prototype
        self._pipeline = BatchedCodecPipeline.from_codecs(meta.codecs)
        self._spec = meta.get_chunk_spec((0,) * len(meta.shape), ArrayConfig.from_dict({}),
                                         prototype)

    def decode(self, data: bytes) -> npt.NDArray[Any]:
        buffer = self._prototype.buffer.from_bytes(data)
        decoded = next(iter(sync(self._pipeline.decode_batch([(buffer, self._spec)]))))
        assert decoded is not None
        return np.array(decoded.as_numpy_array())

    def encode(self, chunk: npt.NDArray[Any]) -> bytes:
        array = self._prototype.nd_buffer.from_numpy_array(np.ascontiguousarray(chunk))
        encoded = next(iter(sync(self._pipeline.encode_batch([(array, self._spec)]))))
        assert encoded is not None
        return bytes(encoded.to_bytes())


class Level:
    """One level array of a pyramid at one node: its shape, grid and chunks."""

    def __init__(self, ctx: StoreContext, view: NodeView, info: ArrayInfo) -> None:
        self.info = info
        meta = metadata_of(info)
        self.access = ChunkAccess(view, info, meta, ctx.io_pool)
        self.shape = tuple(meta.shape)
        self.unit, self.grid = self.access.unit, self.access.grid
        self.dtype: np.dtype[Any] = meta.data_type.to_native_dtype()
        self.fill_value = np.array(meta.fill_value, dtype=self.dtype)
        self._fast = ChunkCodec.for_metadata(meta)
        self._zarr = _ZarrCodec(meta) if self._fast is None else None

    def __repr__(self) -> str:
        return f"<Level {self.info.name!r} shape={self.shape}>"

    def contains(self, coords: Coords) -> bool:
        """Whether chunk ``coords`` lies inside the level's shape."""
        return self.access.contains(coords)

    def box(self, coords: Coords) -> tuple[tuple[int, int], ...]:
        """The voxels ``[start, stop)`` per axis of chunk ``coords``, clipped to the shape."""
        return tuple((c * u, min((c + 1) * u, n))
                     for c, u, n in zip(coords, self.unit, self.shape, strict=True))

    def _decode(self, data: bytes) -> npt.NDArray[Any]:
        if self._fast is not None:
            return self._fast.decode(data)
        assert self._zarr is not None
        return self._zarr.decode(data)

    def _encode(self, chunk: npt.NDArray[Any]) -> bytes | None:
        """Stored bytes of a whole chunk; ``None`` when it is the fill value everywhere."""
        if self._fast is not None:
            return self._fast.encode(chunk)
        assert self._zarr is not None
        # -0.0 equals a fill value of 0.0 but is not it: such a chunk must be stored.
        same_sign = self.dtype.kind != "f" or bool(
            (np.signbit(chunk) == np.signbit(self.fill_value)).all())
        if same_sign and np.array_equal(chunk, np.broadcast_to(self.fill_value, chunk.shape)):
            return None
        return self._zarr.encode(chunk)

    def read_region(self, lo: tuple[int, ...], hi: tuple[int, ...],
                    seen: dict[Coords, bytes | None]) -> npt.NDArray[Any]:
        """Voxels ``[lo, hi)`` (inside the shape); records each chunk's digest in ``seen``."""
        out = np.full(tuple(h - s for s, h in zip(lo, hi, strict=True)), self.fill_value,
                      dtype=self.dtype)
        first = tuple(s // u for s, u in zip(lo, self.unit, strict=True))
        last = tuple((h - 1) // u for h, u in zip(hi, self.unit, strict=True))
        chunks = list(itertools.product(*(range(a, b + 1) for a, b in
                                          zip(first, last, strict=True))))

        def read(chunk: Coords, data: bytes | None) -> None:
            # Blobs are named by the digest of their bytes: this is the chunk's pointer.
            seen[chunk] = None if data is None else digest(data)
            if data is None:
                return
            decoded = self._decode(data)
            start = [c * u for c, u in zip(chunk, self.unit, strict=True)]
            src, dst = [], []
            for s, u, a, b in zip(start, self.unit, lo, hi, strict=True):
                top, bottom = max(s, a), min(s + u, b)
                src.append(slice(top - s, bottom - s))
                dst.append(slice(top - a, bottom - a))
            out[tuple(dst)] = decoded[tuple(src)]

        if out.size:
            self.access.read_each(chunks, read)
        return out

    def write_chunk(self, coords: Coords, values: npt.NDArray[Any]) -> tuple[bool, bytes | None]:
        """Make chunk ``coords`` hold ``values`` (its voxels inside the shape, fill beyond).

        ``values`` larger than the chunk's box is cut, smaller is padded with the fill
        value. Nothing is written when the chunk already holds exactly these bytes.
        Returns ``(written, digest of the chunk now)``.
        """
        chunk = np.full(self.unit, self.fill_value, dtype=self.dtype)
        part = tuple(slice(0, min(v, stop - start)) for v, (start, stop) in
                     zip(values.shape, self.box(coords), strict=True))
        chunk[part] = values[part]
        data = self._encode(chunk)
        new = None if data is None else digest(data)
        if self.access.state(coords).digest == new:
            return False, new
        self.access.write(coords, data)
        return True, new


def parent_chunks(coords: Coords, below: Level, above: Level,
                  factors: tuple[int, ...]) -> list[Coords]:
    """Chunks of ``above`` whose voxels are computed from chunk ``coords`` of ``below``.

    Empty when the chunk lies outside ``below``'s shape (a chunk cut off by a resize).
    """
    ranges = []
    for c, u, n, f, up_u, up_n in zip(coords, below.unit, below.shape, factors, above.unit,
                                      above.shape, strict=True):
        lo, hi = c * u, min((c + 1) * u, n)
        up_lo, up_hi = lo // f, min(-(-hi // f), up_n)
        if lo >= hi or up_lo >= up_hi:
            return []
        ranges.append(range(up_lo // up_u, (up_hi - 1) // up_u + 1))
    return list(itertools.product(*ranges))
