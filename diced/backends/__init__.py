"""Object-store backends: the contract (:class:`ObjectStore`) and its implementations.

Use :func:`open_backend` to turn a store location (path or URL) into a backend.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from diced.backends._base import ObjectStore, check_key
from diced.backends._local import LocalObjectStore
from diced.backends._memory import MemoryObjectStore
from diced.errors import InvalidInputError, NotFoundError

__all__ = ["LocalObjectStore", "MemoryObjectStore", "ObjectStore", "check_key", "open_backend"]


def open_backend(location: str, *, fsync: bool = False) -> ObjectStore:
    """Return the backend for ``location``: a local path, ``file://`` or ``memory://`` URL.

    A local store directory is created if missing, but its parent directory must exist.

    Raises
    ------
    NotFoundError
        The parent directory of a local location does not exist.
    InvalidInputError
        The URL scheme is not supported by this version of diced.
    """
    scheme = urlsplit(location).scheme if "://" in location else ""
    if scheme == "memory":
        return MemoryObjectStore(location.split("://", 1)[1])
    if scheme in ("", "file"):
        path = location.split("://", 1)[1] if scheme else location
        path = os.path.abspath(os.path.expanduser(path))
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise NotFoundError(
                f"cannot open store {location!r}: the directory {parent!r} does not exist; "
                "create it first or choose another location"
            )
        if os.path.exists(path) and not os.path.isdir(path):
            raise InvalidInputError(f"store location {location!r} is a file, not a directory")
        return LocalObjectStore(path, fsync=fsync)
    raise InvalidInputError(
        f"unsupported store location {location!r}: use a local path, file:// or memory:// "
        f"(scheme {scheme!r} is not supported)"
    )
