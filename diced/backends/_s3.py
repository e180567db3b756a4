"""Amazon S3 (and S3-compatible) backend: s3fs's session, S3's conditional requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import aiohttp
import fsspec
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from fsspec.asyn import sync

from diced.backends._base import ObjectInfo
from diced.backends._fsspec import WRITE_ID, BucketObjectStore, PreconditionFailed, modified_time

__all__ = ["S3ObjectStore", "open_s3"]

_T = TypeVar("_T")

_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
#: Errors worth re-sending: throttling, server faults, and S3's 409 for conditional writes
#: racing on one key ("retry the request").
_TRANSIENT = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout",
              "RequestTimeTooSkewed", "ConditionalRequestConflict", "500", "502", "503", "504"}
_TRANSPORT = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError,
              ConnectTimeoutError, aiohttp.ClientError, asyncio.TimeoutError, TimeoutError,
              ConnectionError)


def open_s3(bucket: str, prefix: str, *, anonymous: bool = False,
            storage_options: Mapping[str, Any] | None = None) -> S3ObjectStore:
    """An S3 store in ``bucket`` under ``prefix``.

    Credentials come from the usual AWS chain (environment, ``~/.aws``, instance role)
    unless ``anonymous``; ``storage_options`` go to :class:`s3fs.S3FileSystem` unchanged
    (``endpoint_url`` for S3-compatible services, ``key``/``secret``, ``profile``...).
    ``AWS_ENDPOINT_URL`` in the environment also selects the endpoint.
    """
    options = dict(storage_options or {})
    if anonymous:
        options["anon"] = True
    return S3ObjectStore(fsspec.filesystem("s3", **options), bucket, prefix)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore(BucketObjectStore):
    """Objects in an S3 bucket under a prefix, written with S3's conditional requests.

    ``put_if_absent`` sends ``If-None-Match: *``; ``compare_and_swap`` reads the object
    and its ETag in one GET, compares the bytes, and sends ``If-Match: <ETag>``, so S3
    refuses the write (412 PreconditionFailed) if any other write landed in between.
    Requests use s3fs's aiobotocore client directly (botocore retries throttling and
    transport errors), so s3fs's listing caches never apply.
    """

    def _run(self, request: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``request(client)`` on s3fs's event loop; translate "no such key"."""
        async def call() -> _T:
            await self.fs.set_session()
            client = await self.fs.get_s3(self.bucket)
            return await request(client)

        try:
            result: _T = sync(self.fs.loop, call)
            return result
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(f"{self.bucket}/{exc}") from exc
            if _code(exc) in ("PreconditionFailed", "412"):
                raise PreconditionFailed(str(exc)) from exc
            raise

    async def _get(self, client: Any, key: str, **kwargs: Any) -> tuple[bytes, str]:
        response = await client.get_object(Bucket=self.bucket, Key=self._name(key), **kwargs)
        body = response["Body"]
        try:
            return bytes(await body.read()), str(response["ETag"])
        finally:
            body.close()

    def _fetch(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        ranged = {} if start is None or end is None else {"Range": f"bytes={start}-{end - 1}"}
        try:
            return self._run(lambda client: self._get(client, key, **ranged))[0]
        except ClientError as exc:
            if _code(exc) == "InvalidRange":  # the range starts at or past the end
                return b""
            raise

    def _fetch_versioned(self, key: str) -> tuple[bytes, str]:
        return self._run(lambda client: self._get(client, key))

    def _store(self, key: str, data: bytes, *, if_absent: bool = False,
               if_version: str | None = None, write_id: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if write_id is not None:
            kwargs["Metadata"] = {WRITE_ID: write_id}
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        elif if_version is not None:
            kwargs["IfMatch"] = if_version
        self._run(lambda client: client.put_object(Bucket=self.bucket, Key=self._name(key),
                                                   Body=data, **kwargs))

    def _write_id(self, key: str) -> str | None:
        head = self._run(lambda client: client.head_object(Bucket=self.bucket,
                                                           Key=self._name(key)))
        value = head.get("Metadata", {}).get(WRITE_ID)
        return None if value is None else str(value)

    def _remove(self, key: str) -> None:
        self._run(lambda client: client.delete_object(Bucket=self.bucket, Key=self._name(key)))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        name_prefix = self._name(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        skip = len(self.prefix) + 1 if self.prefix else 0
        page: dict[str, Any] = {}
        while True:
            listing: dict[str, Any] = self._run(
                lambda client, page=page: client.list_objects_v2(  # type: ignore[misc]
                    Bucket=self.bucket, Prefix=name_prefix, **page))
            for item in listing.get("Contents", []):
                if not item["Key"].endswith("/"):  # a console-made "folder", not a key
                    yield ObjectInfo(item["Key"][skip:], int(item.get("Size") or 0),
                                     modified_time(item))
            if not listing.get("IsTruncated"):
                return
            page = {"ContinuationToken": listing["NextContinuationToken"]}

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, ClientError):
            return _code(exc) in _TRANSIENT
        return isinstance(exc, _TRANSPORT)
