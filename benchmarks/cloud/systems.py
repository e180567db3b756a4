"""The systems of the cloud benchmark, each behind the same small interface.

A :class:`CloudSystem` creates and opens arrays at a :class:`Place` (a prefix of the
benchmark bucket on one emulated cloud, reached through one proxy) and hands back the local
suite's :class:`~benchmarks.systems.ArrayHandle`. Every system stores the local suite's
64³ chunks with diced's default codec chain and fill value 0, with its library's default
concurrency; what each can reach on which emulator, and why not, is in
:meth:`CloudSystem.cannot`.

Libraries are imported inside the adapters, so a missing package only skips its system.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchmarks.cloud.emulators import BUCKET
from benchmarks.systems import (
    REPO,
    ArrayHandle,
    _compressor,
    _compressor_json,
    _DicedHandle,
    _TensorStoreHandle,
    _ZarrHandle,
)

__all__ = ["CLOUD_SYSTEMS", "CloudSystem", "Place", "cloud_system"]

_KEY = {"key": "testing", "secret": "testing"}


@dataclass(frozen=True)
class Place:
    """Where one store lives: ``prefix`` in the benchmark bucket of ``cloud``, reached
    through ``endpoint`` (a latency proxy, or the emulator itself)."""

    cloud: str
    endpoint: str
    prefix: str

    @property
    def url(self) -> str:
        return f"{'s3' if self.cloud == 's3' else 'gs'}://{BUCKET}/{self.prefix}"

    def fsspec_options(self) -> dict[str, Any]:
        """s3fs / gcsfs options that reach this place."""
        if self.cloud == "s3":
            return {"endpoint_url": self.endpoint, **_KEY}
        return {"endpoint_url": self.endpoint, "token": "anon"}


class CloudSystem(ABC):
    """One system (library and client) on the emulated clouds."""

    key: ClassVar[str]
    label: ClassVar[str]
    #: Import names whose absence skips the system; the first is the one versioned.
    packages: ClassVar[tuple[str, ...]]
    #: What a "commit" means for this system ("" if nothing).
    commit_means: ClassVar[str] = ""

    @classmethod
    def missing(cls) -> str | None:
        """The first required package that is not installed, or None."""
        return next((p for p in cls.packages if importlib.util.find_spec(p) is None), None)

    @classmethod
    def version(cls) -> str:
        return importlib.metadata.version(cls.packages[0])

    @classmethod
    def cannot(cls, cloud: str, writing: bool) -> str | None:
        """Why the system cannot write (``writing``) or read ``cloud``'s emulator, or None."""
        return None

    @classmethod
    def prepared_by(cls, cloud: str) -> str:
        """The system whose prepared stores this one reads on ``cloud`` (itself, unless it
        cannot write there but reads the same format)."""
        return cls.key

    @abstractmethod
    def create(self, place: Place, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        """A new, empty (fill value 0) array ``name`` in a new store at ``place``."""

    def commit(self, message: str) -> None:  # noqa: B027 - a no-op unless versioned
        """Make the writes since :meth:`create` a version (a no-op for most systems)."""

    @abstractmethod
    def open(self, place: Place, name: str) -> ArrayHandle:
        """A fresh read handle of ``name`` at the store's newest version."""


# -- diced ---------------------------------------------------------------------------------


class DicedOpen(CloudSystem):
    """diced, reading and writing an open node, with its default client."""

    key = "diced-open"
    label = "diced·open"
    packages = ("diced",)
    #: ``storage_options["client"]``: None for diced's default.
    client: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._repo: Any = None

    def _store(self, place: Place) -> Any:
        from diced import DicedStore

        options = place.fsspec_options()
        if place.cloud == "s3":
            del options["key"], options["secret"]  # from the environment, as users do
        if self.client is not None:
            options["client"] = self.client
        return DicedStore(place.url, storage_options=options)

    def create(self, place: Place, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        store = self._store(place)
        self._repo = store.create_repo(REPO)
        return _DicedHandle(self._repo.create_array(name, dtype, shape=shape, chunks=chunks),
                            store)

    def open(self, place: Place, name: str) -> ArrayHandle:
        store = self._store(place)
        return _DicedHandle(store.open_repo(REPO).get_array(name), store)


class DicedLocked(DicedOpen):
    """diced, reading a locked node (bulk writes: write an open node, then lock it)."""

    key = "diced-locked"
    label = "diced·locked"
    commit_means = "lock"

    def commit(self, message: str) -> None:
        self._repo.lock_node(message)


class DicedFsspec(DicedLocked):
    """diced·locked through the fsspec clients (s3fs, gcsfs): the clients before obstore."""

    key = "diced-fsspec"
    label = "diced·locked (fsspec)"
    client = "fsspec"


# -- zarr ----------------------------------------------------------------------------------


class ZarrObstore(CloudSystem):
    """zarr-python 3 over its obstore ``ObjectStore``."""

    key = "zarr-obstore"
    label = "zarr (obstore)"
    packages = ("zarr", "obstore")

    @classmethod
    def cannot(cls, cloud: str, writing: bool) -> str | None:
        if cloud == "gcs" and writing:
            return ("obstore uploads through GCS's XML API, which fake-gcs-server 1.54 "
                    "refuses (400 invalid uploadType); it reads zarr (fsspec)'s stores")
        return None

    @classmethod
    def prepared_by(cls, cloud: str) -> str:
        return "zarr-fsspec" if cloud == "gcs" else cls.key

    def _store(self, place: Place, read_only: bool) -> Any:
        from obstore.store import GCSStore, S3Store
        from zarr.storage import ObjectStore

        client: Any = {"allow_http": True}
        if place.cloud == "s3":
            store: Any = S3Store(BUCKET, prefix=place.prefix, endpoint=place.endpoint,
                                 region="us-east-1", client_options=client)
        else:
            store = GCSStore(BUCKET, prefix=place.prefix, base_url=place.endpoint,
                             skip_signature=True, client_options=client)
        return ObjectStore(store, read_only=read_only)

    def create(self, place: Place, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        import zarr

        return _ZarrHandle(zarr.create_array(self._store(place, False), name=name, shape=shape,
                                             chunks=chunks, dtype=dtype, fill_value=0,
                                             compressors=_compressor()))

    def open(self, place: Place, name: str) -> ArrayHandle:
        import zarr

        return _ZarrHandle(zarr.open_array(self._store(place, True), path=name, mode="r"))


class ZarrFsspec(ZarrObstore):
    """zarr-python 3 over its ``FsspecStore`` (s3fs, gcsfs)."""

    key = "zarr-fsspec"
    label = "zarr (fsspec)"
    packages = ("zarr", "fsspec")

    @classmethod
    def cannot(cls, cloud: str, writing: bool) -> str | None:
        return None

    @classmethod
    def prepared_by(cls, cloud: str) -> str:
        return cls.key

    def _store(self, place: Place, read_only: bool) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(place.url, storage_options=place.fsspec_options(),
                                    read_only=read_only)


def _zarr_codecs(place: Place, name: str) -> list[dict[str, Any]]:
    """The codec chain of the array at ``place`` as zarr-python serialises it."""
    return ZarrFsspec().open(place, name).codecs()


# -- TensorStore ---------------------------------------------------------------------------


class _CloudTensorStoreHandle(_TensorStoreHandle):
    def __init__(self, array: Any, place: Place, name: str) -> None:
        super().__init__(array, None)  # type: ignore[arg-type]
        self._place = place
        self._name = name

    def codecs(self) -> list[dict[str, Any]]:
        return _zarr_codecs(self._place, self._name)


class TensorStoreCloud(CloudSystem):
    """TensorStore's ``zarr3`` driver over its ``s3`` / ``gcs`` kvstore."""

    key = "tensorstore"
    label = "TensorStore"
    packages = ("tensorstore",)

    def _kvstore(self, place: Place, name: str) -> dict[str, Any]:
        path = f"{place.prefix}/{name}/"
        if place.cloud == "s3":
            return {"driver": "s3", "bucket": BUCKET, "path": path,
                    "endpoint": place.endpoint, "aws_region": "us-east-1"}
        # TensorStore reads its GCS endpoint and a test token from the environment (this
        # worker process talks to one endpoint only).
        os.environ["TENSORSTORE_GCS_HTTP_URL"] = place.endpoint
        os.environ["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = "anonymous"
        return {"driver": "gcs", "bucket": BUCKET, "path": path}

    def create(self, place: Place, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        import tensorstore as ts

        metadata = {
            "shape": list(shape),
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                       _compressor_json(dtype)],
        }
        spec = {"driver": "zarr3", "kvstore": self._kvstore(place, name), "metadata": metadata,
                "create": True}
        return _CloudTensorStoreHandle(ts.open(spec).result(), place, name)

    def open(self, place: Place, name: str) -> ArrayHandle:
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": self._kvstore(place, name)}
        return _CloudTensorStoreHandle(ts.open(spec, open=True, read=True).result(), place,
                                       name)


# -- Icechunk ------------------------------------------------------------------------------


class IcechunkCloud(CloudSystem):
    """zarr-python over an Icechunk 1.x session on S3 storage; writes include the commit."""

    key = "icechunk"
    label = "Icechunk"
    packages = ("icechunk", "zarr")
    commit_means = "commit"

    def __init__(self) -> None:
        self._session: Any = None

    @classmethod
    def cannot(cls, cloud: str, writing: bool) -> str | None:
        if cloud == "gcs":
            return ("Icechunk's GCS storage uploads through the XML API (object_store), "
                    "which fake-gcs-server 1.54 refuses")
        return None

    def _repository(self, place: Place, create: bool) -> Any:
        import icechunk

        icechunk.set_logs_filter("error")
        storage = icechunk.s3_storage(
            bucket=BUCKET, prefix=place.prefix, endpoint_url=place.endpoint, allow_http=True,
            force_path_style=True, region="us-east-1", access_key_id="testing",
            secret_access_key="testing")
        return (icechunk.Repository.create if create else icechunk.Repository.open)(storage)

    def create(self, place: Place, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        import zarr

        self._session = self._repository(place, True).writable_session("main")
        return _ZarrHandle(zarr.create_array(self._session.store, name=name, shape=shape,
                                             chunks=chunks, dtype=dtype, fill_value=0,
                                             compressors=_compressor()))

    def commit(self, message: str) -> None:
        self._session.commit(message)

    def open(self, place: Place, name: str) -> ArrayHandle:
        import zarr

        session = self._repository(place, False).readonly_session(branch="main")
        return _ZarrHandle(zarr.open_array(session.store, path=name, mode="r"))


#: Every system, in table order: diced's modes and clients, then the peers.
CLOUD_SYSTEMS: dict[str, type[CloudSystem]] = {
    cls.key: cls
    for cls in (DicedOpen, DicedLocked, DicedFsspec, ZarrObstore, ZarrFsspec,
                TensorStoreCloud, IcechunkCloud)
}


def cloud_system(key: str) -> CloudSystem:
    """A fresh adapter for the system ``key`` (see :data:`CLOUD_SYSTEMS`)."""
    return CLOUD_SYSTEMS[key]()
