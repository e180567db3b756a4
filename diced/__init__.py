"""diced: versioned, chunked nD arrays with a git-like version graph, over zarr v3.

The public surface is fixed here; everything else is an implementation detail.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from diced import codecs as _codecs  # noqa: F401 - registers the diced.jpeg zarr codec
from diced.array import ArrayDtype, DicedArray
from diced.errors import (
    AlreadyExistsError,
    ConflictError,
    DicedException,
    FormatVersionError,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    MergeConflict,
    MergeConflictError,
    NotFoundError,
    ReadOnlyStoreError,
    StorageError,
)
from diced.repo import DicedRepo, NodeInfo
from diced.store import DicedStore
from diced.versioning.diff import VersionDiff

try:
    __version__ = version("diced")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "AlreadyExistsError",
    "ArrayDtype",
    "ConflictError",
    "DicedArray",
    "DicedException",
    "DicedRepo",
    "DicedStore",
    "FormatVersionError",
    "InvalidIndexError",
    "InvalidInputError",
    "LockedError",
    "MergeConflict",
    "MergeConflictError",
    "NodeInfo",
    "NotFoundError",
    "ReadOnlyStoreError",
    "StorageError",
    "VersionDiff",
    "__version__",
]
