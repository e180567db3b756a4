"""The slab streamer: move a volume in chunk-aligned slabs, a few at a time, in parallel.

A *slab* is a range of rows along axis 0 that covers whole chunk rows of the diced array
(64 z-slices for 64³ chunks), clipped to the volume, across the full extent of the other
axes. Slabs are read and written by a small pool of workers, each holding one slab at a
time, so at most ``workers`` slabs are in memory whatever the volume's size, while one
slab is read another is written. Destinations that append (:attr:`ordered`) get their
slabs in order.

On an error or ``KeyboardInterrupt`` no further slab starts; slabs being written finish
(every chunk write is atomic, so what is in the store is whole chunks either way), then
the exception propagates.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

__all__ = ["Slab", "plan_slabs", "stream"]

#: Seconds between the main thread's checks for Ctrl-C while slabs move.
_POLL = 0.05


@dataclass(frozen=True)
class Slab:
    """Rows ``start:stop`` of the volume being moved, the ``index``-th slab in order."""

    index: int
    start: int
    stop: int


def plan_slabs(rows: int, chunk: int, first_row: int) -> list[Slab]:
    """Slabs covering ``rows`` rows that sit at ``first_row`` of an array chunked by ``chunk``.

    Cuts fall where the array's chunk rows end, so each slab touches exactly one chunk
    row and no two slabs share a chunk (no read-modify-write between slabs).
    """
    cuts = [0]
    edge = (first_row // chunk + 1) * chunk - first_row
    while edge < rows:
        cuts.append(edge)
        edge += chunk
    cuts.append(rows)
    return [Slab(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(cuts))
            if b > a]


def stream(slabs: list[Slab], read: Callable[[Slab], npt.NDArray[Any]],
           write: Callable[[Slab, npt.NDArray[Any]], None], *, workers: int,
           ordered: bool = False) -> None:
    """``write(slab, read(slab))`` for every slab, ``workers`` slabs at a time.

    With ``ordered``, writes happen in slab order (reads still overlap them). Returns when
    every slab is written; raises the first error of any worker, or ``KeyboardInterrupt``,
    after the slabs in flight have finished.
    """
    stop = threading.Event()
    turn = threading.Condition()
    next_write = [0]

    def move(slab: Slab) -> None:
        if stop.is_set():
            return
        data = read(slab)
        if ordered:
            with turn:
                turn.wait_for(lambda: next_write[0] == slab.index or stop.is_set())
        try:
            if not stop.is_set():
                write(slab, data)
        finally:
            if ordered:
                with turn:
                    next_write[0] += 1
                    turn.notify_all()

    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="diced-slab") as pool:
        futures: list[Future[None]] = [pool.submit(move, slab) for slab in slabs]
        try:
            pending: set[Future[None]] = set(futures)
            while pending:
                # Wake up now and then: a Ctrl-C that the kernel delivered to a worker
                # thread only runs its handler once the main thread executes Python again.
                done, pending = wait(pending, timeout=_POLL, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()
        except BaseException:
            stop.set()
            with turn:
                turn.notify_all()
            for future in futures:
                future.cancel()
            wait(futures)
            raise
