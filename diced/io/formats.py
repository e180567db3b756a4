"""Which reader or writer a SOURCE or DEST names: the one module that knows every format.

The contracts (:mod:`diced.io.source`, :mod:`diced.io.destination`) know no format; each
format module implements them; this module picks one by the path's suffix or layout, and
imports it only then, so optional packages (tifffile, h5py) load only when used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diced.errors import InvalidInputError, NotFoundError
from diced.io.destination import Destination
from diced.io.source import ArraySource, Source, split_inner_path

__all__ = ["DESTINATIONS", "guess_format", "open_destination", "open_source"]

#: Characters that make a SOURCE a glob pattern rather than a path.
_GLOB = frozenset("*?[")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_TIFF_SUFFIXES = (".tif", ".tiff")


def _is_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _is_n5(path: Path) -> bool:
    return path.suffix.lower() == ".n5" or (path / "attributes.json").exists()


def open_source(source: Any) -> Source:
    """The reader for ``source``: a :class:`Source`, a numpy array, a path or a spec string.

    Raises
    ------
    NotFoundError
        The path, the glob's files, or the inner dataset path does not exist.
    InvalidInputError
        The format is unknown or the files are unreadable, inconsistent (slices of
        different shapes or dtypes) or hold a dtype diced does not store.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, np.ndarray):
        return ArraySource(source)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidInputError(f"cannot import {type(source).__name__} {source!r:.60}: pass "
                                "a path, a spec such as file.h5:/dataset, or a numpy array")
    spec = os.path.expanduser(os.fspath(source))
    if not os.path.exists(spec) and _GLOB & set(spec):
        from diced.io.tiff import SliceStack

        return SliceStack.from_glob(spec)
    location, inner = split_inner_path(spec)
    path = Path(location)
    if not path.exists():
        raise NotFoundError(f"no file or directory {location!r} to import")
    suffix = path.suffix.lower()
    if path.is_dir():
        if _is_zarr(path) or (_is_n5(path) and not any(path.glob("*.tif*"))):
            from diced.io.zarrfmt import ZarrSource

            return ZarrSource(path, inner, n5=not _is_zarr(path))
        from diced.io.tiff import SliceStack

        return SliceStack.from_directory(path)
    if inner and suffix not in _HDF5_SUFFIXES:
        raise InvalidInputError(f"{location!r} is a file; an inner path (':{inner}') applies "
                                "to HDF5 files, zarr and N5 directories only")
    if suffix in _HDF5_SUFFIXES:
        from diced.io.hdf5 import Hdf5Source

        return Hdf5Source(path, inner)
    if suffix in _TIFF_SUFFIXES:
        from diced.io.tiff import TiffVolume

        return TiffVolume(path)
    if suffix == ".npy":
        from diced.io.npy import NpySource

        return NpySource(path)
    raise InvalidInputError(
        f"cannot tell the format of {location!r}: import a directory or glob of TIFF/PNG "
        "slices, a .tif/.tiff volume, file.h5:/dataset, a zarr or N5 directory, or a .npy file"
    )


def _tiff_stack(*args: Any) -> Destination:
    from diced.io.tiff import TiffStackDestination

    return TiffStackDestination(*args)


def _tiff(*args: Any) -> Destination:
    from diced.io.tiff import TiffFileDestination

    return TiffFileDestination(*args)


def _hdf5(*args: Any) -> Destination:
    from diced.io.hdf5 import Hdf5Destination

    return Hdf5Destination(*args)


def _zarr(*args: Any) -> Destination:
    from diced.io.zarrfmt import ZarrDestination

    return ZarrDestination(*args)


#: Format name → factory taking ``(path, inner, shape, dtype, chunks, overwrite)``.
#: Factories import their writer lazily, so optional packages load only when used.
DESTINATIONS: dict[str, Callable[..., Destination]] = {
    "tiff-stack": _tiff_stack,
    "tiff": _tiff,
    "hdf5": _hdf5,
    "zarr": _zarr,
}

_SUFFIXES = {".tif": "tiff", ".tiff": "tiff", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
             ".he5": "hdf5", ".zarr": "zarr"}


def guess_format(dest: str) -> str:
    """The format a DEST names by its suffix; a suffix-less path is a TIFF stack directory.

    Raises :class:`InvalidInputError` for any other suffix.
    """
    location = dest.split(":", 1)[0] if ":" in dest else dest
    suffix = Path(location.rstrip("/")).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if not suffix:
        return "tiff-stack"
    raise InvalidInputError(f"cannot tell the format of {dest!r} from its suffix; pass "
                            f"--format (format=...) with one of {', '.join(DESTINATIONS)}")


def open_destination(dest: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                     chunks: tuple[int, ...], *, format: str | None = None,
                     overwrite: bool = False) -> Destination:
    """A writer for ``dest`` in ``format`` (default: :func:`guess_format`).

    Raises
    ------
    InvalidInputError
        Unknown format, or the format cannot hold an array of ``len(shape)`` dimensions.
    AlreadyExistsError
        ``dest`` exists and ``overwrite`` is false.
    NotFoundError
        The directory ``dest`` should go in does not exist.
    """
    dest = os.path.expanduser(dest)
    kind = format or guess_format(dest)
    if kind not in DESTINATIONS:
        raise InvalidInputError(f"unknown export format {kind!r}; choose one of "
                                f"{', '.join(DESTINATIONS)}")
    location, inner = split_inner_path(dest)
    if not inner and ":" in dest and kind in ("hdf5", "zarr"):
        location, inner = dest.split(":", 1)
        inner = inner.strip("/")
    return DESTINATIONS[kind](Path(location), inner, shape, dtype, chunks, overwrite)
