"""zarr's codec pipeline, with chunk writes to diced stores routed through chunk access.

zarr writes a partly covered chunk by reading it through the store, merging, and setting
it back: between the read and the set another writer's update of the same chunk would be
lost. A zarr Store cannot tell a read that will be written back from any other read, so
the fix lives one level up, in the codec pipeline, which sees the whole read-merge-write
of each chunk. :class:`DicedCodecPipeline` is zarr's own batched pipeline; for byte
setters that belong to a diced Store (see :class:`ChunkTargets`) ``write`` hands
each chunk to :class:`~diced.chunk_access.ChunkAccess`: a whole chunk is written, a
partial one goes through :meth:`~diced.chunk_access.ChunkAccess.update`, which re-runs
zarr's merge on the current bytes until its conditional write lands. Every other store
gets zarr's behaviour unchanged.

Importing this module registers the pipeline and makes it zarr's configured
``codec_pipeline.path``; :func:`installed` tells whether it still is (a user may
configure another pipeline, and then diced refuses chunk writes rather than lose
updates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import zarr
from zarr.abc.store import ByteRequest, ByteSetter
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, BufferPrototype, NDBuffer
from zarr.core.codec_pipeline import BatchedCodecPipeline, fill_value_or_default
from zarr.core.indexing import SelectorTuple
from zarr.core.sync import sync
from zarr.registry import register_pipeline
from zarr.storage import StorePath

from diced.chunk_access import ChunkAccess, slice_bytes
from diced.chunkio import is_fill

__all__ = ["PIPELINE_PATH", "ChunkTargets", "DicedCodecPipeline", "installed"]

PIPELINE_PATH = "diced.zarr_pipeline.DicedCodecPipeline"
Coords = tuple[int, ...]
BatchItem = tuple[ByteSetter, ArraySpec, SelectorTuple, SelectorTuple, bool]

# Threads that only wait for a batch's chunk work (which runs on the store's I/O pool and
# calls back into zarr's loop for codecs): separate from both, so neither can starve the
# other into a deadlock.
_batches = ThreadPoolExecutor(max_workers=32, thread_name_prefix="diced-zarr-batch")


@runtime_checkable
class ChunkTargets(Protocol):
    """A zarr Store whose chunk keys are diced chunks (see :class:`diced.zarr_store.NodeStore`)."""

    def chunk_target(self, key: str) -> tuple[ChunkAccess, Coords] | None:
        """The chunk access and coordinates behind ``key``; ``None`` for other keys."""


def installed() -> bool:
    """Whether zarr's configured codec pipeline is diced's."""
    return bool(zarr.config.get("codec_pipeline.path") == PIPELINE_PATH)


def _target(byte_setter: ByteSetter) -> tuple[ChunkAccess, Coords] | None:
    if isinstance(byte_setter, StorePath) and isinstance(byte_setter.store, ChunkTargets):
        return byte_setter.store.chunk_target(byte_setter.path)
    return None


def _targets(batch: list[Any]) -> list[tuple[ChunkAccess, Coords]] | None:
    """The chunk access and coordinates of every item of ``batch``; ``None`` unless all
    of them (at least one) are diced chunks."""
    found = [target for item in batch if (target := _target(item[0])) is not None]
    return found if batch and len(found) == len(batch) else None


class _Fetched:
    """A byte getter over bytes already read (zarr's decoders, sharding's included)."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    async def get(self, prototype: BufferPrototype,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        if self.data is None:
            return None
        return prototype.buffer.from_bytes(slice_bytes(self.data, byte_range))


class DicedCodecPipeline(BatchedCodecPipeline):
    """zarr's batched pipeline; chunks of diced stores are read and written by chunk access."""

    # zarr splits a selection into batches of ``codec_pipeline.batch_size`` (1 by default).
    # For diced chunks the whole selection is one batch: chunk access fetches its chunks
    # together (one request batch on a bucket), and a write is one guarded write, the node
    # checked open once before any chunk and once after all of them. Per-chunk guards would
    # let a lock that races the write refuse later chunks with LockedError ("nothing was
    # written") after earlier ones landed; one guard reports the race as ConflictError, as
    # the fast path does. Other stores (or a mix) get zarr's batching unchanged.

    async def read(self, batch_info: Iterable[Any], out: NDBuffer,
                   drop_axes: tuple[int, ...] = ()) -> None:
        batch = list(batch_info)
        targets = _targets(batch)
        if targets is None:
            await super().read(batch, out, drop_axes)
            return
        access = targets[0][0]
        fetched: dict[Coords, bytes | None] = {}

        def read_all() -> None:
            access.read_each([coords for _, coords in targets], fetched.__setitem__)

        await asyncio.get_running_loop().run_in_executor(_batches, read_all)
        resolved = [(_Fetched(fetched[coords]), *item[1:])
                    for item, (_, coords) in zip(batch, targets, strict=True)]
        await super().read_batch(resolved, out, drop_axes)

    async def write(self, batch_info: Iterable[BatchItem], value: NDBuffer,
                    drop_axes: tuple[int, ...] = ()) -> None:
        batch = list(batch_info)
        targets = _targets(batch)
        if targets is None:
            await super().write(batch, value, drop_axes)
            return
        # zarr's own refusal of a read-only store, as its set() would raise it.
        batch[0][0].store._check_writable()  # type: ignore[attr-defined]
        access = targets[0][0]
        jobs = list(zip(batch, targets, strict=True))

        def write_all() -> None:
            access.guarded(lambda: access.run(
                lambda job: self._write_chunk(job[0], job[1], value, drop_axes), jobs))

        await asyncio.get_running_loop().run_in_executor(_batches, write_all)

    def _write_chunk(self, item: BatchItem, target: tuple[ChunkAccess, Coords],
                     value: NDBuffer, drop_axes: tuple[int, ...]) -> None:
        """Write one chunk of a batch; runs on the I/O pool, codecs on zarr's loop."""
        _, spec, chunk_selection, out_selection, complete = item
        access, coords = target

        def merged(existing: bytes | None) -> bytes | None:
            decoded = None
            if existing is not None:
                buffer = spec.prototype.buffer.from_bytes(existing)
                decoded = next(iter(sync(self.decode_batch([(buffer, spec)]))))
            chunk = self._merge_chunk_array(decoded, value, out_selection, spec,
                                            chunk_selection, complete, drop_axes)
            # diced's fill test (bytes, not values) rather than zarr's all_equal, which
            # drops a chunk of -0j or of any NaN: the fast path stores those, and both
            # paths must store the same chunks.
            if not spec.config.write_empty_chunks and is_fill(
                    chunk.as_numpy_array(),
                    np.asarray(fill_value_or_default(spec), dtype=spec.dtype.to_native_dtype())):
                return None
            encoded: Any = next(iter(sync(self.encode_batch([(chunk, spec)]))))
            return None if encoded is None else bytes(encoded.to_bytes())

        if complete:
            access.write(coords, merged(None))
        else:
            access.update(coords, merged)


register_pipeline(DicedCodecPipeline)
zarr.config.set({"codec_pipeline.path": PIPELINE_PATH})
