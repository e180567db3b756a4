"""Running many small storage requests on a bounded pool, stopping cleanly on Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["cancel_on_error", "run_all"]

T = TypeVar("T")
R = TypeVar("R")


def cancel_on_error(futures: list[Future[R]]) -> list[R]:
    """The results of ``futures`` in order; on any failure (Ctrl-C included) the ones not
    started are cancelled first, so the caller stops without doing the rest."""
    try:
        wait(futures)
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def run_all(pool: ThreadPoolExecutor, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``work(item)`` for every item on ``pool``; results in order; the first failure is
    raised after cancelling what has not started."""
    return cancel_on_error([pool.submit(work, item) for item in items])
