"""The systems under test, each behind the same small interface.

A :class:`System` creates and opens arrays in a directory of the local disk; an
:class:`ArrayHandle` reads and writes boxes of one array as numpy arrays. Systems that keep
versions (diced, Icechunk) also give a :class:`VersionControl` for the history and
branch-cost workloads.

Every system stores 64³ chunks (the plan's chunk) with the same codec chain, diced's
default (``bytes`` then ``diced.repo.default_compressor()``, today blosc with zstd level 1
and byte shuffle) and a fill value of 0, so all of them skip chunks equal to the fill
value. The runner checks that the stored codec chains are identical. Each library
otherwise runs with its default configuration (thread pools, concurrency, caches:
TensorStore's cache pool is empty by default, zarr and diced cache no chunks, Icechunk
caches manifests).

Libraries are imported inside the adapters, so a missing package only skips its system.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from benchmarks.data import Box

__all__ = ["SYSTEMS", "ArrayHandle", "System", "VersionControl", "system"]

#: Name of the diced repo every diced store holds.
REPO = "bench"


def _compressor() -> Any:
    """diced's default compressor, which every system is configured with."""
    from diced.repo import default_compressor

    return default_compressor()


def _compressor_json(dtype: np.dtype[Any]) -> dict[str, Any]:
    """The same compressor as zarr v3 codec JSON, for TensorStore's spec."""
    codec: dict[str, Any] = _compressor().to_dict()
    if codec["name"] == "blosc":  # TensorStore wants the typesize zarr fills in on write
        codec["configuration"] = {**codec["configuration"], "typesize": dtype.itemsize}
    return codec


class ArrayHandle(ABC):
    """One array of one version, read and written in boxes (numpy in, numpy out)."""

    @abstractmethod
    def read(self, box: Box) -> npt.NDArray[Any]:
        """The voxels of ``box`` as a new numpy array."""

    @abstractmethod
    def write(self, box: Box, data: npt.NDArray[Any]) -> None:
        """Store ``data`` at ``box`` (durable, or staged for :meth:`System.commit`)."""

    @abstractmethod
    def codecs(self) -> list[dict[str, Any]]:
        """The array's zarr v3 codec chain, as zarr-python serialises it."""


class VersionControl(ABC):
    """The version-graph operations the history and branch-cost workloads time.

    There is always a *current* version. :meth:`branch` starts a new writable version
    whose parent is the current one; :meth:`write` changes it; :meth:`commit` makes it an
    immutable version (diced: lock the node; Icechunk: commit the session) and current.
    """

    @abstractmethod
    def head(self) -> str:
        """The id of the current version (committing it first if it is still writable)."""

    @abstractmethod
    def checkout(self, version: str) -> None:
        """Make the committed ``version`` current."""

    @abstractmethod
    def branch(self, name: str | None) -> None:
        """Start a writable child of the current version on a new branch ``name``.

        ``None`` continues the current version's own branch (it must be that branch's tip).
        Afterwards the child is ready to take writes, as a user would need it.
        """

    @abstractmethod
    def write(self, array: str, box: Box, data: npt.NDArray[Any]) -> None:
        """Write ``data`` at ``box`` of ``array`` in the writable version."""

    @abstractmethod
    def commit(self, message: str) -> str:
        """Make the writable version immutable and current; return its id."""

    @abstractmethod
    def open_version(self, version: str, array: str) -> ArrayHandle:
        """A fresh read handle (new store object, cold caches) of ``array`` at ``version``."""

    @abstractmethod
    def writable_version(self) -> str:
        """The id of the writable version (diced: its node UUID; Icechunk: its branch)."""


class System(ABC):
    """One storage system: how it creates, versions and opens arrays in a directory."""

    #: Short identifier used on the command line and in file names.
    key: ClassVar[str]
    #: Column heading in the table.
    label: ClassVar[str]
    #: Import names whose absence skips the system; the first is the one versioned.
    packages: ClassVar[tuple[str, ...]]
    #: What a "commit" means for this system in the table's notes ("" if nothing).
    commit_means: ClassVar[str] = ""

    @classmethod
    def missing(cls) -> str | None:
        """The first required package that is not installed, or None."""
        return next((p for p in cls.packages if importlib.util.find_spec(p) is None), None)

    @classmethod
    def version(cls) -> str:
        """The installed version of the system's package."""
        return importlib.metadata.version(cls.packages[0])

    @abstractmethod
    def create(self, root: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        """A new, empty (fill value 0) array ``name`` in a new store at ``root``."""

    def commit(self, message: str) -> None:  # noqa: B027 - a no-op unless versioned
        """Make the writes since :meth:`create` or :meth:`open_for_edit` a version.

        A no-op for systems without versions and for diced's open node (its writes are
        durable and visible when they return).
        """

    @abstractmethod
    def open(self, root: Path, name: str) -> ArrayHandle:
        """A fresh read handle of ``name`` at the store's newest version."""

    @abstractmethod
    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        """A handle that writes ``name``; for versioned systems, a new writable version."""

    def versions(self, root: Path) -> VersionControl:
        """The version graph of the store at ``root``.

        Raises NotImplementedError for systems without versions.
        """
        raise NotImplementedError(f"{self.label} keeps no versions")

    def import_tiff_stack(self, root: Path, name: str, slices: list[Path],
                          chunks: tuple[int, ...]) -> ArrayHandle:
        """Import 2-D TIFF ``slices`` (in z order) as array ``name`` of a new store at ``root``.

        Raises NotImplementedError for systems without an importer.
        """
        raise NotImplementedError(f"{self.label} has no TIFF importer")


# -- zarr ----------------------------------------------------------------------------------


class _ZarrHandle(ArrayHandle):
    def __init__(self, array: Any) -> None:
        self._array = array

    def read(self, box: Box) -> npt.NDArray[Any]:
        return np.asarray(self._array[box])

    def write(self, box: Box, data: npt.NDArray[Any]) -> None:
        self._array[box] = data

    def codecs(self) -> list[dict[str, Any]]:
        return [codec.to_dict() for codec in self._array.metadata.codecs]


class ZarrSystem(System):
    """Plain zarr-python 3.1 over a ``LocalStore`` (no versions)."""

    key = "zarr"
    label = "zarr"
    packages = ("zarr",)

    def create(self, root: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        import zarr
        from zarr.storage import LocalStore

        return _ZarrHandle(zarr.create_array(LocalStore(root), name=name, shape=shape,
                                             chunks=chunks, dtype=dtype, fill_value=0,
                                             compressors=_compressor()))

    def open(self, root: Path, name: str) -> ArrayHandle:
        import zarr
        from zarr.storage import LocalStore

        return _ZarrHandle(zarr.open_array(LocalStore(root, read_only=True), path=name,
                                           mode="r"))

    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        import zarr
        from zarr.storage import LocalStore

        return _ZarrHandle(zarr.open_array(LocalStore(root), path=name, mode="r+"))

    def import_tiff_stack(self, root: Path, name: str, slices: list[Path],
                          chunks: tuple[int, ...]) -> ArrayHandle:
        """What a zarr user writes: tifffile reads a chunk row of slices, zarr stores it.

        One slab (``chunks[0]`` slices) at a time; zarr encodes and writes the slab's
        chunks concurrently, as it does for any write.
        """
        import tifffile

        first = tifffile.imread(slices[0])
        handle = self.create(root, name, first.dtype, (len(slices), *first.shape), chunks)
        for start in range(0, len(slices), chunks[0]):
            batch = slices[start:start + chunks[0]]
            slab = np.stack([tifffile.imread(path) for path in batch])
            handle.write((slice(start, start + len(batch)), *(slice(None),) * first.ndim),
                         slab)
        return handle


# -- TensorStore ---------------------------------------------------------------------------


class _TensorStoreHandle(ArrayHandle):
    def __init__(self, array: Any, path: Path) -> None:
        self._array = array
        self._path = path

    def read(self, box: Box) -> npt.NDArray[Any]:
        return np.asarray(self._array[box].read().result())

    def write(self, box: Box, data: npt.NDArray[Any]) -> None:
        self._array[box].write(data).result()

    def codecs(self) -> list[dict[str, Any]]:
        # zarr reads what TensorStore wrote, and serialises it the same way as the others.
        import zarr
        from zarr.storage import LocalStore

        array: Any = zarr.open_array(LocalStore(self._path.parent, read_only=True),
                                     path=self._path.name, mode="r")
        return [codec.to_dict() for codec in array.metadata.codecs]


class TensorStoreSystem(System):
    """TensorStore's ``zarr3`` driver over its ``file`` kvstore (no versions)."""

    key = "tensorstore"
    label = "TensorStore"
    packages = ("tensorstore",)

    def create(self, root: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
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
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(root / name)},
                "metadata": metadata, "create": True}
        return _TensorStoreHandle(ts.open(spec).result(), root / name)

    def _open(self, root: Path, name: str, *, write: bool) -> ArrayHandle:
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(root / name)}}
        return _TensorStoreHandle(ts.open(spec, open=True, read=True, write=write).result(),
                                  root / name)

    def open(self, root: Path, name: str) -> ArrayHandle:
        return self._open(root, name, write=False)

    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        return self._open(root, name, write=True)


# -- Icechunk ------------------------------------------------------------------------------


def _icechunk_repository(root: Path, *, create: bool) -> Any:
    import icechunk

    # Icechunk warns on every open that local storage is unsafe for concurrent commits;
    # the benchmark never commits concurrently.
    icechunk.set_logs_filter("error")
    storage = icechunk.local_filesystem_storage(str(root))
    return (icechunk.Repository.create if create else icechunk.Repository.open)(storage)


def _icechunk_array(session: Any, name: str, mode: str) -> _ZarrHandle:
    import zarr

    return _ZarrHandle(zarr.open_array(session.store, path=name, mode=mode))


class IcechunkSystem(System):
    """zarr-python over an Icechunk 1.x session on local filesystem storage.

    Writes go to a writable session of branch ``main`` (or of a new branch, for edits);
    :meth:`commit` commits the session. Reads open a read-only session of ``main``.
    """

    key = "icechunk"
    label = "Icechunk"
    packages = ("icechunk", "zarr")
    commit_means = "commit"

    def __init__(self) -> None:
        self._session: Any = None

    def create(self, root: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        import zarr

        self._session = _icechunk_repository(root, create=True).writable_session("main")
        return _ZarrHandle(zarr.create_array(self._session.store, name=name, shape=shape,
                                             chunks=chunks, dtype=dtype, fill_value=0,
                                             compressors=_compressor()))

    def commit(self, message: str) -> None:
        self._session.commit(message)

    def open(self, root: Path, name: str) -> ArrayHandle:
        session = _icechunk_repository(root, create=False).readonly_session(branch="main")
        return _icechunk_array(session, name, "r")

    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        repo = _icechunk_repository(root, create=False)
        branch = f"edit-{uuid.uuid4().hex[:12]}"
        repo.create_branch(branch, snapshot_id=repo.lookup_branch("main"))
        self._session = repo.writable_session(branch)
        return _icechunk_array(self._session, name, "r+")

    def versions(self, root: Path) -> VersionControl:
        return _IcechunkVersions(root)


class _IcechunkVersions(VersionControl):
    def __init__(self, root: Path) -> None:
        self._root = root
        self._repo = _icechunk_repository(root, create=False)
        self._version: str = self._repo.lookup_branch("main")
        self._branch = "main"
        self._session: Any = None

    def head(self) -> str:
        return self._version

    def checkout(self, version: str) -> None:
        self._version = version
        self._session = None

    def branch(self, name: str | None) -> None:
        if name is None:
            name = "main"
            if self._repo.lookup_branch(name) != self._version:
                raise ValueError(f"version {self._version} is not the tip of {name!r}")
        else:
            self._repo.create_branch(name, snapshot_id=self._version)
        self._branch = name
        self._session = self._repo.writable_session(name)

    def write(self, array: str, box: Box, data: npt.NDArray[Any]) -> None:
        _icechunk_array(self._session, array, "r+").write(box, data)

    def commit(self, message: str) -> str:
        self._version = self._session.commit(message)
        self._session = None
        return self._version

    def open_version(self, version: str, array: str) -> ArrayHandle:
        repo = _icechunk_repository(self._root, create=False)
        return _icechunk_array(repo.readonly_session(snapshot_id=version), array, "r")

    def writable_version(self) -> str:
        return self._branch


# -- diced ---------------------------------------------------------------------------------


class _DicedHandle(ArrayHandle):
    def __init__(self, array: Any, store: Any) -> None:
        self._array = array
        self._store = store  # keeps the store (and its caches) alive with the handle

    def read(self, box: Box) -> npt.NDArray[Any]:
        return np.asarray(self._array[box])

    def write(self, box: Box, data: npt.NDArray[Any]) -> None:
        self._array[box] = data

    def codecs(self) -> list[dict[str, Any]]:
        return [codec.to_dict() for codec in self._array.zarr.metadata.codecs]


class DicedOpenSystem(System):
    """diced, reading and writing an open (writable) version node."""

    key = "diced-open"
    label = "diced·open"
    packages = ("diced",)

    def __init__(self) -> None:
        self._repo: Any = None

    def create(self, root: Path, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
               chunks: tuple[int, ...]) -> ArrayHandle:
        from diced import DicedStore

        store = DicedStore(str(root))
        self._repo = store.create_repo(REPO)
        return _DicedHandle(self._repo.create_array(name, dtype, shape=shape, chunks=chunks),
                            store)

    def open(self, root: Path, name: str) -> ArrayHandle:
        from diced import DicedStore

        store = DicedStore(str(root))
        return _DicedHandle(store.open_repo(REPO).get_array(name), store)

    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        return self.open(root, name)

    def versions(self, root: Path) -> VersionControl:
        return _DicedVersions(root)

    def import_tiff_stack(self, root: Path, name: str, slices: list[Path],
                          chunks: tuple[int, ...]) -> ArrayHandle:
        """``diced.io.import_array`` of the slices' directory into the open root node."""
        from diced import DicedStore
        from diced.io import import_array

        store = DicedStore(str(root))
        self._repo = store.create_repo(REPO)
        return _DicedHandle(import_array(self._repo, name, str(slices[0].parent),
                                         chunks=chunks, progress=False), store)


class DicedLockedSystem(DicedOpenSystem):
    """diced, reading a locked version node; writes go to an open node that is then locked.

    Bulk writes go to the repo's open root, then :meth:`commit` locks it. Edits go to a new
    branch (an open child) of the locked node, which is how a locked version is changed.
    """

    key = "diced-locked"
    label = "diced·locked"
    commit_means = "lock"

    def commit(self, message: str) -> None:
        self._repo.lock_node(message)

    def open_for_edit(self, root: Path, name: str) -> ArrayHandle:
        from diced import DicedStore

        store = DicedStore(str(root))
        self._repo = store.open_repo(REPO)
        self._repo.change_version(self._repo.create_branch(
            "benchmark edits", name=f"edit-{uuid.uuid4().hex[:12]}"))
        return _DicedHandle(self._repo.get_array(name), store)


class _DicedVersions(VersionControl):
    def __init__(self, root: Path) -> None:
        from diced import DicedStore

        self._root = root
        self._store = DicedStore(str(root))
        self._repo = self._store.open_repo(REPO)

    def head(self) -> str:
        if not self._repo.locked:
            self._repo.lock_node("benchmark base")
        uuid_: str = self._repo.uuid
        return uuid_

    def checkout(self, version: str) -> None:
        self._repo.change_version(version)

    def branch(self, name: str | None) -> None:
        self._repo.change_version(self._repo.create_branch("benchmark branch", name=name))

    def write(self, array: str, box: Box, data: npt.NDArray[Any]) -> None:
        self._repo.get_array(array)[box] = data

    def commit(self, message: str) -> str:
        self._repo.lock_node(message)
        uuid_: str = self._repo.uuid
        return uuid_

    def open_version(self, version: str, array: str) -> ArrayHandle:
        from diced import DicedStore

        store = DicedStore(str(self._root))
        return _DicedHandle(store.open_repo(uuid=version).get_array(array), store)

    def writable_version(self) -> str:
        uuid_: str = self._repo.uuid
        return uuid_


#: Every system, in table order: diced's two modes, then the references.
SYSTEMS: dict[str, type[System]] = {
    cls.key: cls
    for cls in (DicedOpenSystem, DicedLockedSystem, ZarrSystem, TensorStoreSystem,
                IcechunkSystem)
}


def system(key: str) -> System:
    """A fresh adapter for the system ``key`` (see :data:`SYSTEMS`)."""
    return SYSTEMS[key]()
