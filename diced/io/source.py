"""The contract every importable volume meets.

A :class:`Source` is a read-only nD volume with a shape and a dtype that can be read in
*row ranges* along axis 0 (``rows start:stop``, every other axis whole). That is all the
slab streamer (:mod:`diced.io.slabs`) needs, and every format reads it cheaply: a range of
slice files, a range of TIFF pages, a hyperslab of an HDF5 or zarr dataset, a window of a
``.npy`` file.

:func:`diced.io.formats.open_source` maps what a user types to a reader:

============================================  ==========================================
SOURCE                                        reader
============================================  ==========================================
a directory of ``*.tif``/``*.tiff``/``*.png``  :class:`~diced.io.tiff.SliceStack`
a glob such as ``scans/z*.tif``               :class:`~diced.io.tiff.SliceStack`
``volume.tif`` (3-D or multi-page)            :class:`~diced.io.tiff.TiffVolume`
``file.h5:/group/dataset``                    :class:`~diced.io.hdf5.Hdf5Source`
``a.zarr``, ``group.zarr:/path/to/array``     :class:`~diced.io.zarrfmt.ZarrSource`
``volume.n5:/path/to/dataset``                :class:`~diced.io.zarrfmt.ZarrSource` (N5)
``volume.npy``                                :class:`~diced.io.npy.NpySource`
a numpy array                                 :class:`ArraySource`
============================================  ==========================================
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from diced.errors import InvalidInputError

__all__ = ["ArraySource", "Source", "check_dtype", "require", "split_inner_path"]



class Source(ABC):
    """A volume to import: ``shape``, ``dtype`` (native byte order) and row-range reads.

    Instances are context managers; :meth:`close` releases file handles. :meth:`read`
    may be called from several threads at once: readers that share one handle serialise
    their reads themselves.
    """

    #: The volume's shape.
    shape: tuple[int, ...]
    #: Its dtype, in native byte order (readers convert big-endian data).
    dtype: np.dtype[Any]
    #: What the volume is, for messages and progress (a path, a dataset name).
    description: str

    @abstractmethod
    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Rows ``start:stop`` along axis 0 (every other axis whole) as a new array.

        ``0 <= start < stop <= shape[0]``. The result has shape
        ``(stop - start, *shape[1:])`` and dtype :attr:`dtype`; it is the caller's to keep
        or change. Raises :class:`~diced.errors.InvalidInputError` when the data on disk
        cannot be read or does not match what the volume announced.
        """

    def close(self) -> None:  # noqa: B027 - readers without handles have nothing to release
        """Release file handles; the source is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.description} shape={self.shape} "
                f"dtype={self.dtype}>")


class ArraySource(Source):
    """An array already in memory (or any numpy-like object with ``shape`` and slicing)."""

    def __init__(self, array: Any, description: str = "numpy array") -> None:
        self._array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = check_dtype(np.dtype(array.dtype), description)
        self.description = description

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        return np.array(self._array[start:stop], dtype=self.dtype)


def check_dtype(dtype: np.dtype[Any], what: str) -> np.dtype[Any]:
    """``dtype`` in native byte order; :class:`InvalidInputError` if diced cannot store it."""
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidInputError(
            f"{what} holds {dtype} values, which diced does not store (it stores bool, int, "
            "uint and float dtypes); convert the data first"
        )
    return dtype.newbyteorder("=")


def split_inner_path(spec: str) -> tuple[str, str]:
    """``"file.h5:/grp/ds"`` → ``("file.h5", "grp/ds")``; no inner path → ``(spec, "")``.

    The split is at the first ``:`` whose left part exists on disk, so paths that
    themselves contain ``:`` still work.
    """
    if os.path.exists(spec) or ":" not in spec:
        return spec, ""
    for i, char in enumerate(spec):
        if char == ":" and i > 0 and os.path.exists(spec[:i]):
            return spec[:i], spec[i + 1:].strip("/")
    return spec, ""


def require(module: str) -> Any:
    """Import the optional package ``module``, or say how to install it.

    The readers and writers of :mod:`diced.io` need packages the core install leaves out
    (the ``io`` extra); each imports them only when used.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InvalidInputError(
            f"this needs the {module.split('.')[0]} package: pip install 'diced[io]'"
        ) from exc
