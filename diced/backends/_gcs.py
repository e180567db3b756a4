"""Google Cloud Storage backend: gcsfs's authenticated session, GCS's JSON API requests.

Its reads can go through obstore instead (:mod:`diced.backends._gcs_obstore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import fsspec
from gcsfs.core import UnclosableBytesIO
from gcsfs.retry import HttpError, errs

from diced.backends._base import ObjectInfo
from diced.backends._fsspec import WRITE_ID, BucketObjectStore, PreconditionFailed, modified_time

__all__ = ["GCSObjectStore", "gcs_filesystem"]

_BOUNDARY = "diced-multipart-boundary"


def gcs_filesystem(*, permissionfile: str | None = None, anonymous: bool = False,
                   storage_options: Mapping[str, Any] | None = None) -> Any:
    """The gcsfs filesystem for a GCS store, with its credentials.

    Credentials: the service-account key file ``permissionfile``; none at all with
    ``anonymous`` (public buckets, and emulators); otherwise Google's default credentials
    (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's login, the metadata server). When
    ``STORAGE_EMULATOR_HOST`` names an emulator and no credentials are given, access is
    anonymous, as Google's own client libraries do. ``storage_options`` go to
    :class:`gcsfs.GCSFileSystem` unchanged (``endpoint_url``, ``project``, ...).
    """
    options = dict(storage_options or {})
    if permissionfile is not None:
        options["token"] = os.path.expanduser(permissionfile)
    elif anonymous or ("token" not in options and os.environ.get("STORAGE_EMULATOR_HOST")):
        options["token"] = "anon"
    return fsspec.filesystem("gcs", **options)


class GCSObjectStore(BucketObjectStore):
    """Objects in a GCS bucket under a prefix, written with generation preconditions.

    ``put_if_absent`` uploads with ``ifGenerationMatch=0``; ``compare_and_swap`` reads the
    object together with its generation, compares the bytes, and uploads with
    ``ifGenerationMatch=<that generation>``, so GCS itself refuses the write (HTTP 412) if
    any other write landed in between. Every upload is one multipart request (object
    metadata and bytes together), never a resumable upload: a single request is atomic and
    carries the precondition on every GCS implementation, emulators included.

    Requests go through gcsfs's session (credentials, retries of 5xx and transport
    errors) but address objects by bucket and name directly, so gcsfs's listing caches and
    path parsing (``#`` as a generation marker, glob characters) never apply to keys.
    """

    def _object_url(self, key: str) -> str:
        return f"{self.fs.base}b/{quote(self.bucket, safe='')}/o/{quote(self._name(key), safe='')}"

    def _fetch(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        headers = {} if start is None or end is None else {"Range": f"bytes={start}-{end - 1}"}
        try:
            _, data = self.fs.call("GET", self._object_url(key), alt="media", headers=headers)
        except HttpError as exc:
            if exc.code == 416:  # the range starts at or past the end
                return b""
            raise
        return bytes(data)

    def _fetch_versioned(self, key: str) -> tuple[bytes, str]:
        headers, data = self.fs.call("GET", self._object_url(key), alt="media")
        return bytes(data), str(headers["x-goog-generation"])

    def _store(self, key: str, data: bytes, *, if_absent: bool = False,
               if_version: str | None = None, write_id: str | None = None) -> None:
        resource: dict[str, Any] = {"name": self._name(key)}
        if write_id is not None:
            resource["metadata"] = {WRITE_ID: write_id}
        body = b"".join([
            f"--{_BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(resource).encode(),
            f"\r\n--{_BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{_BOUNDARY}--\r\n".encode(),
        ])
        params: dict[str, str] = {}
        if if_absent:
            params["ifGenerationMatch"] = "0"
        elif if_version is not None:
            params["ifGenerationMatch"] = if_version
        try:
            self.fs.call(
                "POST", f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket, safe='')}/o",
                # A stream rather than bytes: aiohttp would warn about (and block its loop
                # on) a large bytes body; this one rewinds instead of closing, for retries.
                uploadType="multipart", data=UnclosableBytesIO(body), json_out=True,
                headers={"Content-Type": f'multipart/related; boundary="{_BOUNDARY}"'}, **params,
            )
        except FileExistsError as exc:  # gcsfs's translation of HTTP 412
            raise PreconditionFailed(key) from exc

    def _write_id(self, key: str) -> str | None:
        resource = self.fs.call("GET", self._object_url(key), json_out=True)
        value = (resource.get("metadata") or {}).get(WRITE_ID)
        return None if value is None else str(value)

    def _remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.call("DELETE", self._object_url(key))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        name_prefix = self._name(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        skip = len(self.prefix) + 1 if self.prefix else 0
        url = f"{self.fs.base}b/{quote(self.bucket, safe='')}/o"
        page: dict[str, Any] = {}
        while True:
            listing = self.fs.call("GET", url, prefix=name_prefix, maxResults="1000",
                                   fields="items(name,size,updated),nextPageToken",
                                   json_out=True, **page)
            for item in listing.get("items", []):
                if not item["name"].endswith("/"):  # a console-made "folder", not a key
                    yield ObjectInfo(item["name"][skip:], int(item.get("size") or 0),
                                     modified_time(item))
            token = listing.get("nextPageToken")
            if not token:
                return
            page = {"pageToken": token}

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, HttpError):
            return exc.code in errs
        return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | TimeoutError
                          | ConnectionError)
