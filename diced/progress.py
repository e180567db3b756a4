"""Progress bars of long operations: bytes of one transfer (import, export, pyramids, merge)
with rate and time left, or steps of objects or bytes (gc, fsck, sync) whose total may grow
while the operation discovers work (a walk finds pages as it reads them).

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
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["StepProgress", "TransferProgress", "wants_progress"]


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
                console=console or _console())
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


class StepProgress:
    """A context manager showing one bar per step (``start``), counting objects or bytes.

    A no-op when hidden.
    """

    def __init__(self, show: bool | None = None, console: Console | None = None) -> None:
        self._shown = wants_progress(show)
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = self._task = None

    def start(self, description: str, total: int | None = None, *, bytes_: bool = False
              ) -> None:
        """Begin a step (ending the previous one): ``total`` objects, or bytes."""
        self._stop()
        if not self._shown:
            return
        count: list[ProgressColumn] = (
            [DownloadColumn(), TransferSpeedColumn()] if bytes_ else [MofNCompleteColumn()])
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), *count, TimeElapsedColumn(),
            console=self._console or _console())
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def grow(self, amount: int) -> None:
        """Add ``amount`` to the step's total (work discovered on the way)."""
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[0]
            self._progress.update(self._task, total=(task.total or 0) + amount)

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more as done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)


def _console() -> Console:
    # Plain text: object names and paths in descriptions are not rich markup.
    return Console(markup=False, highlight=False)
