"""The progress bar of an import or export: bytes done, rate and time left.

Shown with rich on a terminal, hidden when stdout is not one (a pipe, a log file, a test)
or when asked to be quiet. Advancing it is safe from any thread.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["TransferProgress", "wants_progress"]


def wants_progress(show: bool | None) -> bool:
    """``show`` itself, or — for ``None`` — whether stdout is a terminal."""
    if show is not None:
        return show
    return sys.stdout.isatty()


class TransferProgress:
    """A context manager counting ``total`` bytes of one transfer; a no-op when hidden.

    ``console`` is where the bar is drawn (default: rich's console on stdout).
    """

    def __init__(self, description: str, total: int, *, show: bool | None = None,
                 console: Console | None = None) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if wants_progress(show):
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
                console=console or Console(markup=False, highlight=False))
            self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more as done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)
