"""TIFF and PNG: stacks of 2-D slices and 3-D (multi-page) TIFF files, read and written.

Reading uses tifffile for TIFF and Pillow for PNG; writing uses tifffile. A slice stack
is sorted naturally (``z9.tif`` before ``z10.tif``), and every slice's shape and dtype is
checked from its header before anything is imported.
"""

from __future__ import annotations

import glob
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.errors import InvalidInputError, NotFoundError
from diced.io.destination import Destination, StagedPath
from diced.io.source import Source, check_dtype, require

__all__ = ["SliceStack", "TiffFileDestination", "TiffStackDestination", "TiffVolume",
           "natural_key"]

_SLICE_SUFFIXES = (".tif", ".tiff", ".png")
_DIGITS = re.compile(r"(\d+)")
#: Pillow image modes → numpy dtypes (those numpy reads a PNG as).
_PIL_DTYPES = {"1": np.bool_, "L": np.uint8, "P": np.uint8, "LA": np.uint8, "RGB": np.uint8,
               "RGBA": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I": np.int32,
               "F": np.float32}
#: Bytes past which a TIFF needs the BigTIFF layout (classic TIFF offsets are 32-bit).
_BIGTIFF_AT = 2**32 - 2**25


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``z9.tif`` < ``z10.tif`` < ``Z11.tif``."""
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in _DIGITS.split(name))


def _header(path: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one slice, from its header only."""
    try:
        if path.lower().endswith(".png"):
            pil = require("PIL.Image")
            with pil.open(path) as image:
                mode = image.mode
                if mode not in _PIL_DTYPES:
                    raise InvalidInputError(f"slice {path!r} has PNG mode {mode}, which diced "
                                            "cannot import; convert it to greyscale or RGB")
                bands = len(image.getbands())
                shape = (image.height, image.width) + ((bands,) if bands > 1 else ())
                return shape, np.dtype(_PIL_DTYPES[mode])
        tifffile = require("tifffile")
        with tifffile.TiffFile(path) as tif:
            # A one-page file is its page; finding series costs more than reading it.
            image = tif.pages.first if len(tif.pages) == 1 else tif.series[0]
            return tuple(image.shape), np.dtype(image.dtype)
    except InvalidInputError:
        raise
    except Exception as exc:  # each library raises its own errors for a corrupt file
        raise InvalidInputError(f"cannot read slice {path!r}: {exc}") from exc


def _read_slice(path: str) -> npt.NDArray[Any]:
    try:
        if path.lower().endswith(".png"):
            pil = require("PIL.Image")
            with pil.open(path) as image:
                return np.asarray(image)
        with require("tifffile").TiffFile(path) as tif:
            image = tif.pages.first if len(tif.pages) == 1 else tif.series[0]
            data: npt.NDArray[Any] = image.asarray()
            return data
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot read slice {path!r}: {exc}") from exc


class SliceStack(Source):
    """A stack of 2-D images, one file per index along axis 0, in natural order.

    Every file must have the same shape and dtype (checked from the headers when the
    stack is opened; :class:`InvalidInputError` names the first file that differs).
    """

    def __init__(self, paths: list[str], description: str) -> None:
        if not paths:
            raise NotFoundError(f"no TIFF or PNG slices in {description}")
        self.paths = sorted(paths, key=lambda p: natural_key(os.path.basename(p)))
        self.description = description
        first_shape, first_dtype = _header(self.paths[0])
        for path in self.paths[1:]:
            shape, dtype = _header(path)
            if shape != first_shape or dtype != first_dtype:
                raise InvalidInputError(
                    f"slices differ: {self.paths[0]!r} is {first_shape} {first_dtype} but "
                    f"{path!r} is {shape} {dtype}; every slice must have the same shape and "
                    "dtype"
                )
        self.shape = (len(self.paths), *first_shape)
        self.dtype = check_dtype(first_dtype, description)

    @classmethod
    def from_directory(cls, directory: Path) -> SliceStack:
        """The ``.tif``/``.tiff``/``.png`` files of ``directory`` (not of subdirectories)."""
        files = [str(p) for p in directory.iterdir()
                 if p.is_file() and p.suffix.lower() in _SLICE_SUFFIXES
                 and not p.name.startswith(".")]
        kinds = {Path(p).suffix.lower().replace(".tiff", ".tif") for p in files}
        if len(kinds) > 1:
            raise InvalidInputError(f"directory {str(directory)!r} holds both TIFF and PNG "
                                    "files; import one kind with a glob such as dir/*.tif")
        return cls(files, f"directory {str(directory)!r}")

    @classmethod
    def from_glob(cls, pattern: str) -> SliceStack:
        """The files matching ``pattern``; :class:`NotFoundError` when there are none."""
        files = [p for p in glob.glob(pattern) if os.path.isfile(p)]
        if not files:
            raise NotFoundError(f"no files match {pattern!r}")
        return cls(files, f"slices {pattern!r}")

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
        for i, path in enumerate(self.paths[start:stop]):
            data = _read_slice(path)
            if data.shape != self.shape[1:]:
                raise InvalidInputError(f"slice {path!r} changed: it now has shape "
                                        f"{data.shape}, not {self.shape[1:]}")
            out[i] = data
        return out


class TiffVolume(Source):
    """One TIFF file holding a 2-D image or a volume (multi-page, ImageJ or OME hyperstack).

    A file whose pages were written one by one (several series of one shape and dtype)
    is their stack along axis 0. Row ranges are read page by page when the pages split
    axis 0 evenly (the usual case: one page per z-slice); otherwise the first read loads
    the whole series, which then stays in memory (a volume stored as a single tiled
    page, say).
    """

    def __init__(self, path: Path) -> None:
        tifffile = require("tifffile")
        self.description = repr(str(path))
        try:
            self._tif = tifffile.TiffFile(str(path))
            series = self._tif.series
        except Exception as exc:
            raise InvalidInputError(f"cannot read TIFF {str(path)!r}: {exc}") from exc
        self._lock = threading.Lock()  # one file handle: reads take turns
        self._whole: npt.NDArray[Any] | None = None
        self._pages_per_row = 0
        first = series[0]
        self._stacked = len(series) > 1 and all(
            s.shape == first.shape and s.dtype == first.dtype for s in series)
        if self._stacked:
            self.shape = (len(series), *(int(n) for n in first.shape))
        else:
            self.shape = tuple(int(n) for n in first.shape)
            pages = len(first.pages)
            row = int(np.prod(self.shape[1:]))
            page = int(np.prod(first.pages[0].shape)) if pages and first.pages[0] else 0
            if len(self.shape) > 2 and page and pages == self.shape[0] * (row // page) \
                    and row % page == 0:
                self._pages_per_row = row // page
        self.dtype = check_dtype(np.dtype(first.dtype), self.description)

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        # docstring inherited
        with self._lock:
            try:
                if self._stacked:
                    return np.stack([np.asarray(self._tif.series[i].asarray(), dtype=self.dtype)
                                     for i in range(start, stop)])
                if self._pages_per_row:
                    k = self._pages_per_row
                    data = self._tif.asarray(key=range(start * k, stop * k), series=0)
                    return np.asarray(data, dtype=self.dtype).reshape(
                        (stop - start, *self.shape[1:]))
                if self._whole is None:
                    self._whole = np.asarray(self._tif.series[0].asarray(), dtype=self.dtype)
                return self._whole[start:stop].copy()
            except Exception as exc:
                raise InvalidInputError(f"cannot read TIFF {self.description}: {exc}") from exc

    def close(self) -> None:
        # docstring inherited
        self._tif.close()
        self._whole = None


class TiffStackDestination(Destination):
    """A new directory of 2-D TIFF files, one per index along axis 0 (``0000.tif``, ...).

    Names are zero-padded so plain and natural sorting agree. Slices are written by
    several threads at once into a staged directory renamed into place on commit.
    """

    def __init__(self, path: Path, inner: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 chunks: tuple[int, ...], overwrite: bool) -> None:
        if inner:
            raise InvalidInputError(f"a TIFF stack has no inner path (':{inner}')")
        if len(shape) < 3:
            raise InvalidInputError(f"a TIFF stack holds 3-D or larger arrays, not {shape}; "
                                    "export to one TIFF file instead")
        self._tifffile = require("tifffile")
        self._staged = StagedPath(path, overwrite)
        self._staged.temp.mkdir()
        self._width = max(4, len(str(shape[0] - 1)))

    def write(self, start: int, data: npt.NDArray[Any]) -> None:
        # docstring inherited
        for i, plane in enumerate(data, start):
            self._tifffile.imwrite(self._staged.temp / f"{i:0{self._width}d}.tif", plane)

    def commit(self) -> None:
        # docstring inherited
        self._staged.commit()

    def abort(self) -> None:
        # docstring inherited
        self._staged.abort()


class TiffFileDestination(Destination):
    """One new TIFF file, one page per index along axis 0.

    tifffile reads it back as one series of the array's shape. Files past ~4 GiB use the
    BigTIFF layout. Pages are appended, so rows must arrive in order. A 2-D array is one
    page, held in memory until :meth:`commit` writes it.
    """

    ordered = True

    def __init__(self, path: Path, inner: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 chunks: tuple[int, ...], overwrite: bool) -> None:
        if inner:
            raise InvalidInputError(f"a TIFF file has no inner path (':{inner}')")
        if len(shape) < 2:
            raise InvalidInputError(f"a TIFF file holds 2-D or larger arrays, not {shape}")
        tifffile = require("tifffile")
        self._staged = StagedPath(path, overwrite)
        big = int(np.prod(shape)) * dtype.itemsize >= _BIGTIFF_AT
        self._writer = tifffile.TiffWriter(self._staged.temp, bigtiff=big)
        self._flat = len(shape) == 2
        #: A 2-D array is a single page, written whole at commit.
        self._rows: list[npt.NDArray[Any]] = []

    def write(self, start: int, data: npt.NDArray[Any]) -> None:
        # docstring inherited
        if self._flat:
            self._rows.append(data)
            return
        for plane in data:
            self._writer.write(plane, contiguous=True)

    def commit(self) -> None:
        # docstring inherited
        if self._flat:
            self._writer.write(np.concatenate(self._rows))
        self._writer.close()
        self._staged.commit()

    def abort(self) -> None:
        # docstring inherited
        self._writer.close()
        self._staged.abort()
