"""``.npy`` files, memory-mapped one row range at a time.

Each read maps only the rows it needs and unmaps them when it returns, so importing a
file larger than memory keeps the process's resident memory to the slabs in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.errors import InvalidInputError
from diced.io.source import Source, check_dtype

__all__ = ["NpySource"]


class NpySource(Source):
    """A ``.npy`` file (C or Fortran order) read through short-lived memory maps."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.description = repr(str(path))
        try:
            with path.open("rb") as f:
                version = np.lib.format.read_magic(f)
                header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = header(f)
                self._offset = f.tell()
        except (ValueError, OSError) as exc:
            raise InvalidInputError(f"cannot read .npy file {self.description}: {exc}") from exc
        self.shape = tuple(int(n) for n in shape)
        self._stored = np.dtype(dtype)
        self.dtype = check_dtype(self._stored, self.description)
        self._fortran = bool(fortran)

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        try:
            if self._fortran or not self.shape:
                # Rows of a Fortran-order file are strided across the whole file: map it all.
                mapped = np.memmap(self._path, dtype=self._stored, mode="r",
                                   offset=self._offset, shape=self.shape, order="F")
                window = mapped[start:stop]
            else:
                row = int(np.prod(self.shape[1:])) * self._stored.itemsize
                window = mapped = np.memmap(self._path, dtype=self._stored, mode="r",
                                            offset=self._offset + start * row,
                                            shape=(stop - start, *self.shape[1:]))
            out = np.array(window, dtype=self.dtype, order="C")
        except (ValueError, OSError) as exc:
            raise InvalidInputError(f"cannot read .npy file {self.description}: {exc}") from exc
        del window, mapped  # the last references: CPython unmaps the rows right here
        return out
