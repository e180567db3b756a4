"""HDF5 datasets (h5py), read and written: ``file.h5:/group/dataset``.

Chunked and contiguous datasets both read as hyperslabs of rows. h5py serialises every
call on one library-wide lock, so reads and writes are safe from several threads (they
take turns inside HDF5; the slab streamer still overlaps them with diced's own I/O).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from diced.io.destination import Destination, StagedPath
from diced.io.source import Source, check_dtype, require

__all__ = ["Hdf5Destination", "Hdf5Source"]


def _datasets(h5: Any) -> list[str]:
    """Paths of every dataset in an open HDF5 file."""
    h5py = require("h5py")
    found: list[str] = []
    h5.visititems(lambda name, obj: found.append(name)
                  if isinstance(obj, h5py.Dataset) else None)
    return found


class Hdf5Source(Source):
    """One dataset of an HDF5 file; without an inner path, the file's only dataset."""

    def __init__(self, path: Path, inner: str) -> None:
        h5py = require("h5py")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise InvalidInputError(f"cannot read HDF5 file {str(path)!r}: {exc}") from exc
        try:
            names = _datasets(self._file)
            if not inner:
                if len(names) != 1:
                    raise InvalidInputError(
                        f"{str(path)!r} holds {len(names)} datasets "
                        f"({', '.join(names[:10]) or 'none'}); name one as "
                        f"{path}:/path/to/dataset"
                    )
                inner = names[0]
            node = self._file.get(inner)
            if not isinstance(node, h5py.Dataset):
                raise NotFoundError(f"no dataset {inner!r} in {str(path)!r}; it holds "
                                    f"{', '.join(names[:10]) or 'no datasets'}")
            self._dataset = node
            self.description = f"{str(path)!r}:/{inner}"
            self.shape = tuple(int(n) for n in node.shape)
            self.dtype = check_dtype(np.dtype(node.dtype), self.description)
        except BaseException:
            self._file.close()
            raise

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        try:
            return np.asarray(self._dataset[start:stop], dtype=self.dtype)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {self.description}: {exc}") from exc

    def close(self) -> None:
        # docstring inherited
        self._file.close()


class Hdf5Destination(Destination):
    """A dataset (chunked like the exported array, uncompressed) in an HDF5 file.

    A new file is staged and renamed into place on commit. Into an existing file the
    dataset is written in place and deleted again by :meth:`abort`. Without an inner
    path the dataset is named ``data``.
    """

    def __init__(self, path: Path, inner: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 chunks: tuple[int, ...], overwrite: bool) -> None:
        h5py = require("h5py")
        self._inner = inner or "data"
        self._lock = threading.Lock()
        self._staged: StagedPath | None = None
        if path.exists() and inner:
            try:
                self._file = h5py.File(path, "r+")
            except OSError as exc:
                raise InvalidInputError(f"cannot add {self._inner!r} to {str(path)!r}, which is "
                                        f"not a writable HDF5 file: {exc}") from exc
            if self._inner in self._file:
                if not overwrite:
                    self._file.close()
                    raise AlreadyExistsError(f"{str(path)!r} already holds {self._inner!r}; "
                                             "pass --overwrite (overwrite=True) to replace it")
                del self._file[self._inner]
        else:
            self._staged = StagedPath(path, overwrite)
            self._file = h5py.File(self._staged.temp, "w")
        hchunks = tuple(max(1, min(c, n)) for c, n in zip(chunks, shape, strict=True))
        self._dataset = self._file.create_dataset(
            self._inner, shape=shape, dtype=dtype,
            chunks=hchunks if all(shape) else None)

    def write(self, start: int, data: npt.NDArray[Any]) -> None:
        # docstring inherited
        with self._lock:
            self._dataset[start:start + len(data)] = data

    def commit(self) -> None:
        # docstring inherited
        self._file.close()
        if self._staged is not None:
            self._staged.commit()

    def abort(self) -> None:
        # docstring inherited
        if self._staged is None:
            del self._file[self._inner]
        self._file.close()
        if self._staged is not None:
            self._staged.abort()
