"""The contract every export target meets.

A :class:`Destination` is created for one shape and dtype, receives row ranges along
axis 0 (from several threads at once unless it declares itself :attr:`~Destination.ordered`),
and is then either :meth:`~Destination.commit`-ted or :meth:`~Destination.abort`-ed.
Writers that make a new file or directory build it under a hidden temporary name beside
the target and rename it into place on commit, so an interrupted export (Ctrl-C, a crash,
``kill -9``) never leaves a half-written file under the name asked for.

Formats are registered in :data:`diced.io.formats.DESTINATIONS` by name; ``--format`` picks
one, otherwise the DEST suffix does (see :func:`diced.io.formats.guess_format`). A later
OME-Zarr writer registers itself there as one more entry (a
:class:`~diced.io.zarrfmt.ZarrDestination` subclass whose :meth:`~Destination.commit` adds
the ``multiscales`` metadata).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy.typing as npt

from diced.errors import AlreadyExistsError, NotFoundError

__all__ = ["Destination", "StagedPath"]


class Destination(ABC):
    """An export target of fixed ``shape`` and ``dtype``, written in row ranges.

    Subclasses take ``(path, inner, shape, dtype, chunks, overwrite)``: ``inner`` is the
    part after ``:`` in ``file.h5:/group/dataset`` (``""`` when absent) and ``chunks`` the
    exported array's chunk shape (writers that chunk their output reuse it).
    """

    #: True when rows must arrive in increasing order (a writer that appends).
    ordered: ClassVar[bool] = False

    @abstractmethod
    def write(self, start: int, data: npt.NDArray[Any]) -> None:
        """Store ``data`` as rows ``start:start + len(data)``."""

    @abstractmethod
    def commit(self) -> None:
        """Finish: after this returns the export is complete under its target name."""

    @abstractmethod
    def abort(self) -> None:
        """Remove what this destination wrote; the target is as it was before."""


class StagedPath:
    """A new file or directory built under a temporary name, renamed into place on commit.

    Raises :class:`AlreadyExistsError` at construction when the target exists and
    ``overwrite`` is false, and :class:`NotFoundError` when its parent directory is missing.
    """

    def __init__(self, target: Path, overwrite: bool) -> None:
        self.target = target
        self.overwrite = overwrite
        if target.exists() and not overwrite:
            raise AlreadyExistsError(f"{str(target)!r} exists; pass --overwrite "
                                     "(overwrite=True) to replace it")
        if not target.parent.is_dir():
            raise NotFoundError(f"directory {str(target.parent)!r} does not exist; create it "
                                "first")
        self.temp = target.parent / f".{target.name}.partial-{os.getpid()}"
        _remove(self.temp)

    def commit(self) -> None:
        """Replace the target by the staged file or directory."""
        if self.overwrite:
            _remove(self.target)
        os.replace(self.temp, self.target)

    def abort(self) -> None:
        """Delete the staged file or directory."""
        _remove(self.temp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
