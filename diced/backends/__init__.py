"""Object-store backends: the contract (:class:`ObjectStore`) and its implementations.

Use :func:`open_backend` to turn a store location (path or URL) into a backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import fsspec.core

from diced.backends._base import ObjectStore, check_key
from diced.backends._cache import CachedObjectStore
from diced.backends._fsspec import FsspecObjectStore
from diced.backends._local import LocalObjectStore
from diced.backends._memory import MemoryObjectStore
from diced.errors import InvalidInputError, NotFoundError, StorageError

__all__ = [
    "CachedObjectStore",
    "FsspecObjectStore",
    "LocalObjectStore",
    "MemoryObjectStore",
    "ObjectStore",
    "check_key",
    "open_backend",
]


def open_backend(location: str, *, fsync: bool = False, permissionfile: str | None = None,
                 anonymous: bool = False, storage_options: Mapping[str, Any] | None = None
                 ) -> ObjectStore:
    """Return the backend for ``location``: a local path, ``file://``, ``memory://``,
    ``gs://bucket/prefix``, ``s3://bucket/prefix`` or any other fsspec URL (read-only).

    A local store directory is created if missing, but its parent directory must exist.
    ``permissionfile`` (a Google service-account key), ``anonymous`` (no credentials) and
    ``storage_options`` (passed to the fsspec filesystem, e.g. ``endpoint_url``) apply to
    remote locations only; see ``docs/cloud.md``.

    Raises
    ------
    NotFoundError
        The parent directory of a local location does not exist.
    InvalidInputError
        The URL scheme is not supported, or an option does not apply to the location.
    """
    scheme = urlsplit(location).scheme if "://" in location else ""
    if scheme not in _LOCAL_SCHEMES:
        return _open_remote(location, scheme, permissionfile=permissionfile,
                            anonymous=anonymous, storage_options=storage_options)
    if permissionfile is not None or anonymous or storage_options:
        raise InvalidInputError(f"permissionfile, anonymous and storage_options apply to "
                                f"cloud locations, not to {location!r}")
    if scheme == "memory":
        return MemoryObjectStore(location.split("://", 1)[1])
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


_LOCAL_SCHEMES = ("", "file", "memory")


def _open_remote(location: str, scheme: str, *, permissionfile: str | None, anonymous: bool,
                 storage_options: Mapping[str, Any] | None) -> ObjectStore:
    """The GCS, S3 or generic fsspec backend for a URL (the libraries load on first use)."""
    if permissionfile is not None and scheme not in ("gs", "gcs"):
        raise InvalidInputError("permissionfile applies only to gs:// locations")
    if scheme in ("gs", "gcs", "s3", "s3a"):
        bucket, _, prefix = location.split("://", 1)[1].partition("/")
        if not bucket:
            raise InvalidInputError(f"store location {location!r} names no bucket: "
                                    f"use {scheme}://bucket/prefix")
        extra = "gcs" if scheme in ("gs", "gcs") else "s3"
        options = dict(storage_options or {})
        client = options.pop("client", None)
        if client not in (None, "obstore", "fsspec"):
            raise InvalidInputError(f"storage_options client={client!r} is not a client: "
                                    "use 'obstore' or 'fsspec' (see docs/cloud.md)")
        try:
            if extra == "gcs":
                return _open_gcs(bucket, prefix, client, permissionfile=permissionfile,
                                 anonymous=anonymous, options=options)
            return _open_s3(bucket, prefix, client, anonymous=anonymous, options=options)
        except ImportError as exc:
            raise StorageError(f"{scheme}:// stores need the {extra} extra: "
                               f"pip install 'diced[{extra}]' ({exc})") from exc
    if anonymous:
        raise InvalidInputError(f"anonymous applies to gs:// and s3:// locations; for "
                                f"{location!r} pass the filesystem's own storage_options")
    try:
        fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise InvalidInputError(
            f"unsupported store location {location!r}: use a local path, file://, memory://, "
            f"gs://, s3:// or another fsspec URL (scheme {scheme!r}: {exc})"
        ) from exc
    except Exception as exc:
        raise StorageError(f"cannot open store location {location!r}: "
                           f"{type(exc).__name__}: {exc}") from exc
    return FsspecObjectStore(fs, root)


def _open_gcs(bucket: str, prefix: str, client: str | None, *, permissionfile: str | None,
              anonymous: bool, options: dict[str, Any]) -> ObjectStore:
    """The GCS backend: reads through obstore unless the fsspec client is asked for, or
    an option needs gcsfs for every request; uploads always through gcsfs."""
    from diced.backends._gcs import GCSObjectStore, gcs_filesystem

    fs = gcs_filesystem(permissionfile=permissionfile, anonymous=anonymous,
                        storage_options=options)
    if client != "fsspec":
        try:
            from diced.backends._gcs_obstore import READ_OPTIONS, GCSObstoreObjectStore
        except ImportError:
            if client == "obstore":
                raise
        else:
            unsupported = sorted(set(options) - READ_OPTIONS)
            if not unsupported:
                return GCSObstoreObjectStore(fs, bucket, prefix)
            if client == "obstore":
                raise InvalidInputError(
                    f"storage_options {', '.join(unsupported)} have no obstore equivalent: "
                    "drop them, or use client='fsspec'")
    return GCSObjectStore(fs, bucket, prefix)


def _open_s3(bucket: str, prefix: str, client: str | None, *, anonymous: bool,
             options: dict[str, Any]) -> ObjectStore:
    """The S3 backend: obstore unless the fsspec client is asked for, or needed.

    Without an explicit ``client``, options only s3fs understands (and a missing obstore)
    select s3fs, so every option documented before obstore keeps working.
    """
    if client != "fsspec":
        try:
            from diced.backends._obstore import UnsupportedOptions, open_s3_obstore
        except ImportError:
            if client == "obstore":
                raise
        else:
            try:
                return open_s3_obstore(bucket, prefix, anonymous=anonymous,
                                       storage_options=options)
            except UnsupportedOptions as exc:
                if client == "obstore":
                    raise InvalidInputError(
                        f"storage_options {exc} have no obstore equivalent: drop them, or "
                        "use the s3fs client with client='fsspec'") from exc
    from diced.backends._s3 import open_s3

    return open_s3(bucket, prefix, anonymous=anonymous, storage_options=options)
