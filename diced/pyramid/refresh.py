"""One pass over a pyramid: recompute exactly the blocks whose inputs changed.

What changed needs no bookkeeping: an open node holds a pointer for every chunk written
since its parent (:meth:`~diced.versioning.node.NodeView.pointers`), and its parent's
pyramid was consistent when the parent was locked. So a pass computes, level by level:

* dirty level-0 chunks: this node's pointers whose digest differs from the parent's chunk;
* dirty level-``k`` blocks: those computed from a dirty level-``k−1`` chunk, plus every
  level-``k`` chunk this node wrote (a pass that stopped half-way, a resize's edges).

Each dirty block is recomputed from level ``k−1`` and written only if its bytes change.
The cost is proportional to the chunks changed in the node, never to the array's size.

A pass can also start from what an earlier pass in the same process saw
(:class:`Seen`): then only chunks that changed since, or that it never looked at, count as
dirty. ``lock_node`` uses that to finish a pyramid after sealing the node at almost no cost.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from diced.progress import TransferProgress
from diced.pyramid.chunks import Level, parent_chunks
from diced.pyramid.downsample import downsample
from diced.pyramid.spec import PyramidSpec
from diced.versioning.node import NodeView

__all__ = ["PyramidUpdate", "Seen", "refresh"]

Coords = tuple[int, ...]
Digests = dict[Coords, bytes | None]

# Block computations wait on chunk reads, which run on the store's I/O pool: they get
# threads of their own so neither pool can starve the other.
_blocks = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1),
                             thread_name_prefix="diced-pyramid")


@dataclass(frozen=True)
class PyramidUpdate:
    """What one update of a pyramid did: blocks recomputed and chunks rewritten, per level.

    ``computed[k - 1]`` and ``rewritten[k - 1]`` are the counts of level ``k``; a
    recomputed block whose bytes did not change is not rewritten.
    """

    computed: tuple[int, ...]
    rewritten: tuple[int, ...]

    @property
    def total_rewritten(self) -> int:
        """Chunks rewritten over every level."""
        return sum(self.rewritten)


@dataclass
class Seen:
    """What a pass saw, level 0 first.

    ``levels[k]``: digests of level ``k``'s chunks as the pass (or an earlier one it
    continued) read or wrote them. ``pointers[k]``: the node's pointers of level ``k`` as
    last listed by this pass, after its writes to that level.
    """

    levels: list[Digests] = field(default_factory=list)
    pointers: dict[int, Digests] = field(default_factory=dict)

    def at(self, level: int) -> Digests:
        while len(self.levels) <= level:
            self.levels.append({})
        return self.levels[level]


def _changed(view: NodeView, level: Level, index: int, seen: Seen | None,
             now: Seen) -> set[Coords]:
    """Chunks of ``level`` this node changed: pointers unlike what the pyramid was built on.

    That is the parent's chunk, or with ``seen`` the chunk as an earlier pass saw it.
    """
    info = level.info

    def reference(coords: Coords) -> bytes | None:
        if seen is not None and coords in seen.at(index):
            return seen.at(index)[coords]
        return view.base_digest(info, coords)

    pointers = now.pointers[index] = view.pointers(info)
    return {c for c, d in pointers.items() if d != reference(c)}


def _written(view: NodeView, level: Level, index: int, seen: Seen | None) -> set[Coords]:
    """Chunks of ``level`` this node wrote (since ``seen``, when given)."""
    pointers = view.pointers(level.info)
    if seen is None:
        return set(pointers)
    known = seen.at(index)
    return {c for c, d in pointers.items() if c not in known or known[c] != d}


def refresh(view: NodeView, levels: list[Level], spec: PyramidSpec, *,
            seen: Seen | None = None, rebuild_from: int | None = None,
            progress: bool | None = False) -> tuple[PyramidUpdate, Seen]:
    """Recompute the dirty blocks of ``levels`` (level 0 first) at ``view``.

    ``rebuild_from``: levels from this one up are new and empty, so every block computed
    from a stored chunk of the level below is computed. Returns what was done, and what
    this pass and ``seen`` saw (for a later pass).
    """
    now = Seen([dict(d) for d in seen.levels] if seen is not None else [])
    dirty = set() if rebuild_from == 1 else _changed(view, levels[0], 0, seen, now)
    computed, rewritten = [], []
    for k in range(1, len(levels)):
        below, level, factors = levels[k - 1], levels[k], spec.factors[k - 1]
        if rebuild_from is not None and k >= rebuild_from:
            sources, todo = set(view.chunks(below.info)), set()
        else:
            sources, todo = dirty, _written(view, level, k, seen)
        for coords in sources:
            todo.update(parent_chunks(coords, below, level, factors))
        todo = {c for c in todo if level.contains(c)}
        count = _compute(below, level, factors, spec.method, sorted(todo), now, k, progress)
        computed.append(len(todo))
        rewritten.append(count)
        dirty = _changed(view, level, k, seen, now)
    return PyramidUpdate(tuple(computed), tuple(rewritten)), now


def _compute(below: Level, level: Level, factors: tuple[int, ...], method: str,
             todo: list[Coords], now: Seen, k: int, progress: bool | None) -> int:
    """Recompute ``todo`` blocks of ``level``; return how many were rewritten."""
    block_bytes = below.dtype.itemsize
    for u, f in zip(level.unit, factors, strict=True):
        block_bytes *= u * f

    def one(coords: Coords) -> tuple[Coords, bool, bytes | None, Digests]:
        box = level.box(coords)
        lo = tuple(min(start * f, n) for (start, _), f, n in
                   zip(box, factors, below.shape, strict=True))
        hi = tuple(min(stop * f, n) for (_, stop), f, n in
                   zip(box, factors, below.shape, strict=True))
        read: Digests = {}
        region = below.read_region(lo, hi, read)
        written, now_digest = level.write_chunk(coords, downsample(region, factors, method))
        return coords, written, now_digest, read

    count = 0
    with TransferProgress(f"{level.info.name}", len(todo) * block_bytes,
                          show=progress if todo else False) as bar:
        futures = [_blocks.submit(one, coords) for coords in todo]
        try:
            for future in futures:
                coords, written, now_digest, read = future.result()
                now.at(k - 1).update(read)
                now.at(k)[coords] = now_digest
                count += written
                bar.advance(block_bytes)
        finally:
            for future in futures:
                future.cancel()
    return count
