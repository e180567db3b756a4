"""``DicedStore``: the entry point, one store of many repos at a path or URL."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from diced.array import DicedArray
from diced.backends import CachedObjectStore, ObjectStore, open_backend
from diced.context import ArrayAddress, NodeAddress, StoreContext
from diced.errors import InvalidInputError
from diced.repo import DicedRepo
from diced.versioning import keys
from diced.versioning.catalog import RepoCatalog
from diced.versioning.chunkindex import PageCache
from diced.versioning.graph import DEFAULT_BRANCH, VersionGraph
from diced.zarr_store import NodeStore

if TYPE_CHECKING:
    from diced_viewer import ViewerServer

    from diced.lifecycle import GcReport, StoreUsage, SyncReport, VerifyReport

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_REMOTE_CONCURRENCY", "DicedStore",
           "default_concurrency", "reopen_array", "reopen_node_store"]

#: Default bound of the local cache (``cache_size``): 10 GiB.
DEFAULT_CACHE_SIZE = 10 * 2**30
#: Chunk requests in flight at once on a bucket. A request waits ~10-50 ms on the network
#: and moves one 0.25-2 MiB chunk; 64 in flight keep ~1 GB/s moving at 20 ms per request,
#: below the per-prefix request rates GCS and S3 throttle at.
DEFAULT_REMOTE_CONCURRENCY = 64


def default_concurrency(backend: ObjectStore) -> int:
    """Threads for chunk work: one per core and one more on local disk and memory,
    :data:`DEFAULT_REMOTE_CONCURRENCY` on a bucket. The thread that asks for the chunks
    counts as one of them: it works alongside the pool's (see ``ChunkAccess.run``).

    Local chunk work is CPU-bound (blosc and the file system calls of a page-cached store
    take microseconds to wait on), so threads beyond the cores only contend for them and
    for the GIL: on 2 cores, unaligned 100³ reads took ~20% longer with 8 threads than with
    3, and bulk reads and writes were no faster (docs/benchmarks.md). The extra thread
    covers the moments one waits on the disk.
    """
    return DEFAULT_REMOTE_CONCURRENCY if backend.remote else (os.cpu_count() or 1) + 1


class DicedStore:
    """A diced store: many repos at one location.

    Parameters
    ----------
    location
        A local directory (``~`` expanded; created if missing, its parent must exist),
        ``file://...``, ``memory://name`` (in-process, for tests and scratch work),
        ``gs://bucket/prefix``, ``s3://bucket/prefix``, or another fsspec URL (read-only).
    port
        Start the web viewer at ``127.0.0.1:port`` in a background thread (DICED's
        behaviour), read-only, until :meth:`close` or the end of the ``with`` block.
        ``None`` (the default) starts nothing; see :meth:`serve` for more options.
    permissionfile
        Google service-account key file for ``gs://`` locations; not accepted for others.
    anonymous
        Access a ``gs://`` or ``s3://`` location without credentials (public buckets).
    storage_options
        Options for the fsspec filesystem of a remote location, e.g. ``endpoint_url`` of an
        emulator or S3-compatible service. See ``docs/cloud.md``.
    fsync
        Flush every object to stable storage before it is published (survives power loss,
        at some write speed).
    cache
        A local directory (``~`` expanded, created if missing) caching the store's
        immutable objects, chunks and index pages of locked versions and manifests, read
        through on first use; for example ``"~/.cache/diced"``. Such objects never change,
        so the cache is never stale; several processes and stores may share one directory.
        ``None`` (the default) disables it. See ``docs/cloud-cache.md``.
    cache_size
        Bound on the cache directory's contents in bytes (default 10 GiB); the least
        recently used objects are evicted beyond it.
    concurrency
        Chunk reads, writes and codec work in flight at once: the bound on parallel
        requests. Default: one per CPU core plus one on local disk and memory (chunk work
        there is CPU-bound; raise it for a network file system), 64 on a bucket (where each
        request mostly waits on the network).

    The store is a context manager; :meth:`close` releases it.

    Raises
    ------
    NotFoundError
        The location's parent directory does not exist.
    FormatVersionError
        The store was written by a newer diced.
    InvalidInputError
        The location is not a diced store, or an argument does not apply.
    """

    def __init__(self, location: str, port: int | None = None,
                 permissionfile: str | None = None, *, fsync: bool = False,
                 cache: str | None = None, cache_size: int = DEFAULT_CACHE_SIZE,
                 anonymous: bool = False, storage_options: dict[str, Any] | None = None,
                 concurrency: int | None = None) -> None:
        if not isinstance(location, str) or not location:
            raise InvalidInputError(f"a store location must be a path or URL, not {location!r}")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                                 or not 0 <= port <= 65535):
            raise InvalidInputError(f"port must be an integer from 0 to 65535, not {port!r}")
        if cache is not None and not isinstance(cache, (str, os.PathLike)):
            raise InvalidInputError(f"cache must be a directory path (or None), not {cache!r}")
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise InvalidInputError(f"cache_size must be a number of bytes (an integer >= 0), "
                                    f"not {cache_size!r}")
        if permissionfile is not None and not isinstance(permissionfile, (str, os.PathLike)):
            raise InvalidInputError(f"permissionfile must be a file path, not {permissionfile!r}")
        if concurrency is not None and (not isinstance(concurrency, int)
                                        or isinstance(concurrency, bool) or concurrency < 1):
            raise InvalidInputError(f"concurrency must be a positive integer (requests and "
                                    f"chunk tasks at once), not {concurrency!r}")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise InvalidInputError(f"storage_options must be a dict, not {storage_options!r}")
        self.location = location
        #: Keyword arguments that reopen this store elsewhere (pickled array handles).
        self.options: dict[str, Any] = {"permissionfile": permissionfile, "fsync": fsync,
                                        "cache": cache, "cache_size": cache_size,
                                        "anonymous": anonymous,
                                        "storage_options": storage_options,
                                        "concurrency": concurrency}
        self.backend: ObjectStore = open_backend(
            location, fsync=fsync, permissionfile=permissionfile, anonymous=anonymous,
            storage_options=storage_options)
        if cache is not None:
            self.backend = CachedObjectStore(self.backend, os.fspath(cache), cache_size,
                                             keys.is_immutable)
        self.catalog = RepoCatalog(self.backend, location)
        #: Decoded chunk-index pages shared by every repo of this store (immutable).
        self.page_cache = PageCache()
        #: Threads that fetch, decode and encode chunks; codecs and I/O release the GIL.
        #: Their number bounds the requests in flight: one per core (and one spare) keeps the
        #: cores busy on local disk; a bucket needs many more (see DEFAULT_CONCURRENCY).
        self.io_pool = ThreadPoolExecutor(
            max_workers=concurrency or default_concurrency(self.backend),
            thread_name_prefix="diced-io")
        #: What repos, arrays and zarr Stores of this store share.
        self.context = StoreContext(self.backend, self.page_cache, self.io_pool, location,
                                    self.options, reopen_array, reopen_node_store)
        self._viewers: list[ViewerServer] = []
        if port is not None:
            try:
                self.serve(port=port)
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"DicedStore({self.location!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's resources. Data is already durable; nothing is flushed.

        Viewers started by ``port=`` or :meth:`serve` stop first, releasing their ports.
        """
        while getattr(self, "_viewers", None):
            self._viewers.pop().stop()
        self.io_pool.shutdown(wait=True)
        self.backend.close()

    def serve(self, host: str = "127.0.0.1", port: int = 8000, *,
              allow_writes: bool = False, **options: Any) -> ViewerServer:
        """Start the web viewer of this store in a background thread; return its handle.

        It serves until ``handle.stop()`` or :meth:`close`. ``port=0`` picks a free port
        (``handle.port`` tells which). Read-only unless ``allow_writes``. ``options``
        (``allowed_hosts``, ``cors_origins``, ``token``, ``limits``) go to
        ``diced_viewer.ViewerServer``. See docs/viewer.md.

        Raises
        ------
        StorageError
            The port is in use, or the address cannot be bound.
        InvalidInputError
            The port is not an integer from 0 to 65535, or writes on a non-loopback
            address without a token.
        """
        # The viewer is a face above this API: loaded by name, so the API never imports it.
        viewer_module = importlib.import_module("diced_viewer")
        viewer: ViewerServer = viewer_module.ViewerServer(
            self, host, port, allow_writes=allow_writes, **options).start()
        self._viewers.append(viewer)
        return viewer

    def create_repo(self, name: str, description: str = "") -> DicedRepo:
        """Create repo ``name`` and return it, positioned at its open root node.

        Raises :class:`AlreadyExistsError` if the name is taken.
        """
        record = self.catalog.create(name, description)
        return DicedRepo(self.context, record, record.root)

    def list_repos(self) -> list[tuple[str, str]]:
        """``[(name, root node UUID), ...]`` sorted by name (DICED's shape)."""
        return [(r.name, r.root) for r in self.catalog.list()]

    def get_repouuid(self, name: str) -> str:
        """The root node UUID of repo ``name`` (what DICED called the repo UUID)."""
        return self.catalog.by_name(name).root

    def open_repo(self, name: str | None = None, uuid: str | None = None,
                  readonly: bool = False, *, version: str | None = None) -> DicedRepo:
        """Open a repo by ``name`` or by a version ``uuid``.

        By name, the repo opens at the newest node of its ``master`` branch (its leaf),
        not at the root as DICED did, or at ``version`` (any reference of that repo:
        ``tag:NAME``, ``:branch``, a UUID...; see docs/versioning.md). By ``uuid`` (full or
        unique prefix, any repo of the store), it opens at that node; ``uuid`` wins when
        both are given. ``readonly`` handles refuse every write.

        Raises
        ------
        NotFoundError
            No such repo or node.
        InvalidInputError
            Neither name nor uuid was given, or the prefix is ambiguous.
        """
        if uuid is not None and version is not None:
            raise InvalidInputError("give open_repo a uuid or a version, not both")
        if uuid is not None:
            record, node = self.catalog.find_node(uuid)
            if name is not None and record.name != name:
                raise InvalidInputError(f"version {uuid!r} belongs to repo {record.name!r}, "
                                        f"not {name!r}")
            return DicedRepo(self.context, record, node, readonly=readonly)
        if name is None:
            raise InvalidInputError("open_repo needs a repo name or a version uuid")
        record = self.catalog.by_name(name)
        graph = VersionGraph(self.backend, record.uuid)
        node = graph.branch_leaf(DEFAULT_BRANCH) if version is None else graph.resolve(version)
        return DicedRepo(self.context, record, node, readonly=readonly)

    def delete_repo(self, name: str) -> None:
        """Delete repo ``name`` with all its versions (irreversible)."""
        self.catalog.delete(name)

    # -- storage lifecycle (diced.lifecycle; see docs/lifecycle.md) ------------------------

    def _lifecycle(self, module: str) -> Any:
        # The lifecycle services sit above this API (the command line calls them too):
        # loaded by name, as the viewer is, so the API never imports them.
        return importlib.import_module(f"diced.lifecycle.{module}")

    def _jobs(self) -> int:
        """Requests the lifecycle operations keep in flight: the store's concurrency."""
        concurrency: int | None = self.options.get("concurrency")
        return concurrency or default_concurrency(self.backend)

    def storage_report(self) -> StoreUsage:
        """Stored bytes of each repo and of the whole store (``diced du LOCATION``)."""
        usage: StoreUsage = self._lifecycle("sizes").store_usage(
            self.backend, jobs=self._jobs(), cache=self.page_cache)
        return usage

    def verify(self, repo: str | None = None, version: str | None = None, *,
               progress: bool | None = None) -> VerifyReport:
        """Check every object the store (or repo ``repo``, or one ``version``) reaches:
        present, parseable, matching its digest. Reads only; see ``diced fsck``.

        ``report.ok`` is false when something is damaged; ``report.damage`` says what, and
        which versions, arrays and chunks it affects. ``progress``: show a bar (``None``:
        on a terminal).
        """
        report: VerifyReport = self._lifecycle("verify").verify_store(
            self.backend, repo, version, jobs=self._jobs(), progress=progress)
        return report

    def gc(self, grace: float | str | None = None, dry_run: bool = False, *,
           progress: bool | None = None) -> GcReport:
        """Delete every object no repo reaches, if older than ``grace`` (``diced gc``).

        ``grace`` is seconds or a duration such as ``"1h"`` (``None``: one day); it must
        exceed twice the longest time a writer (a lock, say) takes; 0 only for a store
        nobody writes to meanwhile. Blobs, pages and manifests go to a trash first and
        are deleted by a run at least ``grace`` later. Safe while other processes write
        and lock (docs/format.md says why). ``dry_run`` reports without deleting.

        Raises
        ------
        StorageError
            A reachable object is damaged (nothing is deleted; run ``verify``).
        ConflictError
            Another collector is running on this store.
        """
        gc = self._lifecycle("gc")
        seconds = (gc.DEFAULT_GRACE if grace is None
                   else gc.parse_duration(grace) if isinstance(grace, str) else grace)
        report: GcReport = gc.collect_garbage(self.backend, grace=seconds, dry_run=dry_run,
                                              jobs=self._jobs(), progress=progress)
        return report

    def sync_to(self, destination: DicedStore | str, *, repos: Sequence[str] | None = None,
                versions: Sequence[str] | None = None, jobs: int | None = None,
                progress: bool | None = None) -> SyncReport:
        """Copy repos (all, or ``repos``), or only ``versions`` and their ancestry, to
        ``destination`` (a store or a location, created if missing), copying only the
        objects it lacks; UUIDs, branches and tags are kept. Only locked versions are
        copied. Idempotent: run it again to finish an interrupted copy or to send new
        versions (``diced clone``, ``sync``, ``push``, ``pull``; docs/lifecycle.md).
        ``jobs`` bounds the requests in flight (default: the store's concurrency).
        """
        copy = self._lifecycle("sync").copy_versions
        if isinstance(destination, DicedStore):
            report: SyncReport = copy(self.backend, destination.backend, repos=repos,
                                      versions=versions, jobs=jobs or self._jobs(),
                                      progress=progress)
            return report
        with DicedStore(destination) as target:
            report = copy(self.backend, target.backend, repos=repos, versions=versions,
                          jobs=jobs or max(self._jobs(), target._jobs()), progress=progress)
            return report


# One store per location, options and process, opened on first use and kept for the
# process's lifetime: unpickling many handles (one per Dask task, say) then shares one
# store's connections, thread pool and index-page cache instead of opening a store each.
# The process id is part of the key because a forked child cannot use its parent's threads.
_stores: dict[tuple[int, str, str], DicedStore] = {}
_stores_lock = threading.Lock()


def _shared_repo(address: NodeAddress) -> DicedRepo:
    # Option values may be unhashable (``storage_options`` is a dict); their repr is not.
    key = (os.getpid(), address.location, repr(address.options))
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = DicedStore(address.location, **dict(address.options))
    record = store.catalog.by_uuid(address.repo)
    return DicedRepo(store.context, record, address.node, readonly=address.readonly)


def reopen_array(address: ArrayAddress) -> DicedArray:
    """Open the array at ``address`` (the inverse of pickling a :class:`DicedArray`).

    Raises
    ------
    NotFoundError
        The store, repo, node or array does not exist where this process looks.
    """
    return _shared_repo(address.node).get_array(address.name)


def reopen_node_store(address: NodeAddress) -> NodeStore:
    """Open the zarr Store at ``address`` (the inverse of pickling a :class:`NodeStore`)."""
    return _shared_repo(address).zarr_store()
