"""S3 (and S3-compatible) backend over obstore: Rust's ``object_store`` client, from Python.

obstore signs and sends each request in Rust, off the GIL, on one shared connection pool:
a request costs the caller one call into Rust instead of botocore's Python request
pipeline, which is what bounds s3fs once many requests are in flight on few cores (see
docs/cloud.md, "Clients"). The contract's conditional writes map directly onto obstore's
put modes: ``"create"`` (``If-None-Match: *``) and ``{"e_tag": ...}`` (``If-Match``).

Lost responses: ``object_store`` re-sends a request after a server error, but never a
conditional put after a transport error (the put is not idempotent), so such a failure
surfaces here; :class:`~diced.backends._requests.RequestObjectStore` then re-sends it and
tells "our earlier try landed" from "another writer got there first" by the write id the
put carries in the object's metadata (``x-amz-meta-diced-write-id``), as for every remote
backend.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import obstore
from obstore.exceptions import AlreadyExistsError, GenericError, PreconditionError
from obstore.store import S3Store

from diced.backends._base import ObjectInfo
from diced.backends._requests import LAZY_INIT, WRITE_ID, PreconditionFailed, RequestObjectStore

__all__ = ["ObstoreObjectStore", "ObstoreReads", "UnsupportedOptions", "open_s3_obstore",
           "s3_store_options"]

#: Fragments of an obstore error message that mark a failure worth sending again: transport
#: errors, throttling and server errors that outlived object_store's own retries, and S3's
#: 409 for conditional writes racing on one key.
_TRANSIENT = ("error sending request", "connection", "timed out", "timeout",
              "status code: 5", "status code: 429", "SlowDown", "ConditionalRequestConflict",
              "status code: 409")
#: Keys per listing page (S3's maximum).
_PAGE = 1000

_T = TypeVar("_T")


def _status(exc: BaseException, code: int) -> bool:
    """Whether obstore's error says the server answered with HTTP status ``code``.

    obstore keeps the status in the message only ("... status code: 412 Precondition ..."),
    next to request ids that may contain any digits.
    """
    return f"status code: {code} " in str(exc)


class ObstoreReads(RequestObjectStore):
    """The read primitives over an obstore store (``reader``): fetch, fetch with a version
    token, list. Mixed into the obstore backend and into the GCS backend's obstore reads.

    ``token_field`` names the object metadata field that is the version token the store's
    conditional writes compare: ``"e_tag"`` on S3, ``"version"`` (the generation) on GCS.
    """

    reader: Any
    url: str
    token_field = "e_tag"
    #: Requests of one get_many in flight at once.
    batch_concurrency = 64

    _loop: _LoopThread | None = None

    def _get_batch(self, keys: Sequence[str]) -> list[bytes | None]:
        # docstring inherited
        with LAZY_INIT:
            if self._loop is None:
                self._loop = _LoopThread()
            loop = self._loop
        found = loop.run(self._get_all(keys))
        # A failed get is sent again through get(), which retries it and translates errors.
        return [self.get(key) if isinstance(result, BaseException) else result
                for key, result in zip(keys, found, strict=True)]

    async def _get_all(self, keys: Sequence[str]) -> list[bytes | BaseException | None]:
        """Every object at once (obstore's async API: one task each, no thread per get)."""
        limit = asyncio.Semaphore(self.batch_concurrency)

        async def one(key: str) -> bytes | None:
            async with limit:
                try:
                    result = await obstore.get_async(self.reader, key)
                    return bytes(await result.bytes_async())
                except FileNotFoundError:
                    return None

        return await asyncio.gather(*(one(key) for key in keys), return_exceptions=True)

    def close(self) -> None:
        # docstring inherited
        with LAZY_INIT:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()
        super().close()

    # -- primitives (docstrings in RequestObjectStore) ----------------------------------------

    def _fetch(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is None or end is None:
            return bytes(obstore.get(self.reader, key).bytes())
        try:
            return bytes(obstore.get_range(self.reader, key, start=start, end=end))
        except GenericError as exc:
            if _status(exc, 416):  # the range starts at or past the end
                return b""
            raise

    def _fetch_versioned(self, key: str) -> tuple[bytes, str]:
        result = obstore.get(self.reader, key)
        data = bytes(result.bytes())
        token = result.meta[self.token_field]  # type: ignore[literal-required]
        if token is None:
            raise GenericError(f"{self!r} returned {key!r} without its {self.token_field}")
        return data, str(token)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        # object_store lists whole path segments ("a/b" means "a/b/..."), diced's prefixes
        # are plain strings: list the enclosing segment from just before the prefix (keys
        # come back in order), keep the keys that start with it, stop after the last one.
        parent, _, last = prefix.rpartition("/")
        offset = None
        if last:
            offset = (f"{parent}/" if parent else "") + last[:-1] + chr(ord(last[-1]) - 1)
        try:
            pages = obstore.list(self.reader, parent or None, offset=offset, chunk_size=_PAGE)
            for page in pages:
                for meta in page:
                    key = meta["path"]
                    if key.startswith(prefix):
                        yield ObjectInfo(key, int(meta["size"]),
                                         meta["last_modified"].timestamp())
                    elif offset is not None and key > prefix:
                        return
        except GenericError as exc:
            if _status(exc, 404):
                raise FileNotFoundError(self.url) from exc
            raise

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, GenericError):
            message = str(exc)
            return any(fragment in message for fragment in _TRANSIENT)
        return super()._is_transient(exc)


class ObstoreObjectStore(ObstoreReads):
    """Objects in an S3 bucket under a prefix, through an obstore ``S3Store``.

    Parameters
    ----------
    store
        The obstore store, created with the bucket and the prefix.
    url
        The location it serves (``s3://bucket/prefix``), for messages.
    """

    writable = True
    atomic_conditional_writes = True

    def __init__(self, store: Any, url: str) -> None:
        self.reader = store
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _store(self, key: str, data: bytes, *, if_absent: bool = False,
               if_version: str | None = None, write_id: str | None = None) -> None:
        mode: Any = "create" if if_absent else (
            {"e_tag": if_version} if if_version is not None else "overwrite")
        attributes: Any = None if write_id is None else {WRITE_ID: write_id}
        try:
            # One request, never a multipart upload: a single PUT carries the precondition.
            obstore.put(self.reader, key, data, mode=mode, attributes=attributes,
                        use_multipart=False)
        except AlreadyExistsError as exc:
            if _status(exc, 409):  # a racing conditional write or delete: S3 says retry
                raise GenericError(f"ConditionalRequestConflict: {exc}") from exc
            raise PreconditionFailed(key) from exc
        except PreconditionError as exc:
            if _status(exc, 404):  # If-Match on a missing object
                raise FileNotFoundError(key) from exc
            raise PreconditionFailed(key) from exc

    def _write_id(self, key: str) -> str | None:
        head = obstore.get(self.reader, key, options={"head": True})
        value = head.attributes.get(WRITE_ID)
        return None if value is None else str(value)

    def _remove(self, key: str) -> None:
        obstore.delete(self.reader, key)


class _LoopThread:
    """An asyncio event loop on a daemon thread, for batches of obstore's async requests.

    Callers may be on any thread, including one running another event loop (zarr's), so
    batches never run on the caller's own loop.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="diced-obstore",
                                       daemon=True)
        self.thread.start()

    def run(self, batch: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(batch, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class UnsupportedOptions(ValueError):
    """Storage options obstore has no equivalent for (the fsspec client may have one)."""


#: s3fs's option names that obstore's S3 configuration can express.
_S3FS_OPTIONS = {"endpoint_url", "key", "secret", "token", "anon", "profile",
                 "requester_pays", "client_kwargs"}
_CLIENT_KWARGS = {"endpoint_url", "region_name"}


def s3_store_options(bucket: str, prefix: str, *, anonymous: bool,
                     storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``S3Store`` arguments for s3fs-style ``storage_options``.

    Maps ``endpoint_url`` (also ``AWS_ENDPOINT_URL[_S3]``), ``key``/``secret``/``token``,
    ``anon``, ``profile``, ``requester_pays`` and ``client_kwargs``' ``endpoint_url`` and
    ``region_name``. Credentials otherwise come from obstore's chain (environment, web
    identity, container and instance roles); a profile (the option, ``AWS_PROFILE``, or
    the shared credentials files when the environment names no key) is read by botocore.

    Raises
    ------
    UnsupportedOptions
        An option has no obstore equivalent.
    """
    client_kwargs = dict(storage_options.get("client_kwargs") or {})
    unknown = sorted(set(storage_options) - _S3FS_OPTIONS) + sorted(
        f"client_kwargs.{k}" for k in set(client_kwargs) - _CLIENT_KWARGS)
    if unknown:
        raise UnsupportedOptions(", ".join(unknown))
    config: dict[str, Any] = {"bucket": bucket, "conditional_put": "etag"}
    if prefix.strip("/"):
        config["prefix"] = prefix.strip("/")
    endpoint = (storage_options.get("endpoint_url") or client_kwargs.get("endpoint_url")
                or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    client: dict[str, Any] = {}
    if endpoint:
        config["endpoint"] = str(endpoint).rstrip("/")
        client["allow_http"] = str(endpoint).startswith("http://")
    region = client_kwargs.get("region_name")
    if region:
        config["region"] = region
    if anonymous or storage_options.get("anon"):
        config["skip_signature"] = True
    elif storage_options.get("key") or storage_options.get("secret"):
        config["access_key_id"] = storage_options.get("key")
        config["secret_access_key"] = storage_options.get("secret")
        if storage_options.get("token"):
            config["session_token"] = storage_options["token"]
    elif _wants_profile(storage_options):
        provider = _BotocoreCredentials(storage_options.get("profile"))
        config["credential_provider"] = provider
        region = region or provider.region
    if "region" not in config and region:
        config["region"] = region
    if "region" not in config and not (os.environ.get("AWS_REGION")
                                       or os.environ.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1" if endpoint else _bucket_region(bucket)
    if storage_options.get("requester_pays"):
        config["request_payer"] = True
    if client:
        config["client_options"] = client
    return config


def open_s3_obstore(bucket: str, prefix: str, *, anonymous: bool,
                    storage_options: Mapping[str, Any]) -> ObstoreObjectStore:
    """An obstore-backed store in ``bucket`` under ``prefix`` (see :func:`s3_store_options`).

    Raises
    ------
    UnsupportedOptions
        An option has no obstore equivalent.
    """
    options = s3_store_options(bucket, prefix, anonymous=anonymous,
                               storage_options=storage_options)
    bucket_name = options.pop("bucket")
    url = f"s3://{bucket_name}/{prefix.strip('/')}".rstrip("/")
    return ObstoreObjectStore(S3Store(bucket_name, **options), url)


def _wants_profile(storage_options: Mapping[str, Any]) -> bool:
    """Whether credentials should come from AWS's shared files (which obstore cannot read)."""
    if storage_options.get("profile") or os.environ.get("AWS_PROFILE"):
        return True
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return False
    files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
             os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    return any(os.path.exists(os.path.expanduser(path)) for path in files)


class _BotocoreCredentials:
    """obstore credential provider over botocore's chain for a profile (files, SSO, roles)."""

    #: How long obstore may keep credentials before asking again; botocore refreshes
    #: temporary ones itself.
    ttl = timedelta(minutes=5)

    def __init__(self, profile: str | None) -> None:
        import botocore.session

        self.session = botocore.session.Session(profile=profile)
        self.region: str | None = self.session.get_config_variable("region")

    def __call__(self) -> dict[str, Any]:
        found = self.session.get_credentials()
        if found is None:
            raise PermissionError("no AWS credentials found for the profile: configure "
                                  "~/.aws/credentials, or pass key and secret")
        frozen = found.get_frozen_credentials()
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": datetime.now(UTC) + self.ttl}


def _bucket_region(bucket: str) -> str:
    """The AWS region of ``bucket`` (S3 names it even to an anonymous HEAD), or us-east-1.

    botocore finds a bucket's region by itself; object_store must be told, and signing
    for the wrong region fails.
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"https://{bucket}.s3.amazonaws.com", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.headers.get("x-amz-bucket-region") or "us-east-1")
    except urllib.error.HTTPError as exc:
        return str(exc.headers.get("x-amz-bucket-region") or "us-east-1")
    except OSError:
        return "us-east-1"
