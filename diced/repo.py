"""``DicedRepo``: one repository, positioned at one version node (the current version)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from diced import zarr_ome as ome
from diced.array import ArrayDtype, DicedArray, check_shape
from diced.chunk_access import metadata_of
from diced.codecs import jpeg_codec
from diced.context import StoreContext
from diced.errors import InvalidInputError, LockedError
from diced.pyramid import (
    after_seal,
    before_lock,
    bring_up,
    check_deletable,
    delete_levels,
    is_level_name,
    plan_spec,
    pyramid_of,
)
from diced.repo_versions import RepoVersioning
from diced.versioning.graph import VersionGraph, validate_branch_name
from diced.versioning.node import NodeView
from diced.versioning.prune import BranchDeletion, delete_branch, delete_version
from diced.versioning.records import NodeRecord, RepoRecord
from diced.zarr_store import ARRAY_NAME, NodeStore

if TYPE_CHECKING:
    from diced.lifecycle import RepoUsage

__all__ = ["DEFAULT_CHUNKS", "UNBOUNDED", "DicedRepo", "NodeInfo", "default_compressor"]

#: Axis length of an array created without a shape (DICED's unbounded volumes).
UNBOUNDED = 2**31 - 1
#: Default chunk shapes by number of dimensions (other ndims get ~256 Ki elements).
DEFAULT_CHUNKS = {1: (262144,), 2: (512, 512), 3: (64, 64, 64)}
#: Most elements in one chunk (a chunk is read and written whole, in memory).
MAX_CHUNK_ELEMENTS = 2**28


@dataclass(frozen=True)
class NodeInfo:
    """A version node as listed by :meth:`DicedRepo.list_nodes` (the DAG for viewers)."""

    uuid: str
    parents: tuple[str, ...]
    children: tuple[str, ...]
    branch: str
    note: str
    locked: bool
    created: str
    locked_at: str | None
    lock_message: str
    is_branch_leaf: bool


def _default_chunks(ndim: int) -> tuple[int, ...]:
    return DEFAULT_CHUNKS.get(ndim, (max(1, round(262144 ** (1 / ndim))),) * ndim)


def default_compressor() -> BloscCodec:
    """diced's default compressor: blosc with zstd level 1 and byte shuffle.

    Measured (docs/format.md): as small and as fast as plain zstd-1 on uint8 images,
    twice as fast with a better ratio on uint16, and ~20× smaller on uint64 label volumes.
    """
    return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


def _zarr_metadata(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype[Any],
                   attributes: dict[str, Any], lossy: bool,
                   dimension_names: tuple[str, ...]) -> dict[str, Any]:
    """zarr v3 ``zarr.json`` document for a new array, produced by zarr itself."""
    scratch = MemoryStore()
    codec_args: dict[str, Any] = (
        {"serializer": jpeg_codec(), "compressors": None} if lossy
        else {"compressors": default_compressor()}
    )
    array = zarr.create_array(scratch, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                              attributes=attributes, dimension_names=dimension_names,
                              **codec_args)
    buffer = array.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"]
    meta: dict[str, Any] = json.loads(buffer.to_bytes())
    return meta


class DicedRepo(RepoVersioning):
    """A repository of versioned arrays and files, at one *current* version node.

    Writes (arrays, files) go to the current node, which must be open. Obtain instances
    from :meth:`DicedStore.create_repo` or :meth:`DicedStore.open_repo`. Tags, diffs,
    merges, the full history and time travel come from
    :class:`~diced.repo_versions.RepoVersioning` (see docs/versioning.md).

    Attributes
    ----------
    name, repo_uuid
        The repo's name and UUID.
    readonly
        This handle never writes (a store opened for reading public data, say).
    """

    def __init__(self, ctx: StoreContext, record: RepoRecord, node: str, *,
                 readonly: bool = False) -> None:
        self._ctx = ctx
        self._record = record
        self._graph = VersionGraph(ctx.backend, record.uuid)
        self.readonly = readonly
        self._view = self._open_view(node)

    def __repr__(self) -> str:
        return f"<DicedRepo {self.name!r} at {self.uuid} ({self.state})>"

    def _open_view(self, uuid: str) -> NodeView:
        record = self._graph.node(uuid)
        return NodeView.open(self._ctx.backend, record, self._ctx.page_cache,
                             self._graph.node)

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def repo_uuid(self) -> str:
        return self._record.uuid

    @property
    def created(self) -> str:
        """When the repo was created (ISO-8601, UTC)."""
        return self._record.created

    @property
    def description(self) -> str:
        return self._record.description

    @property
    def uuid(self) -> str:
        """Full UUID of the current version node."""
        return self._view.uuid

    @property
    def locked(self) -> bool:
        """Whether the current node is locked (re-read from the store)."""
        return self._graph.node(self.uuid).locked

    @property
    def state(self) -> str:
        """The current node's state, re-read: ``open``, ``locked``, or ``sealing`` (a lock
        that started and did not finish; ``lock_node`` again finishes it)."""
        return self._graph.node(self.uuid).state

    def _writable_view(self) -> NodeView:
        if self.readonly:
            raise LockedError(f"repo {self.name!r} was opened read-only; open it with "
                              "readonly=False to write")
        return self._view

    # -- versions ---------------------------------------------------------------------------

    def get_current_version(self) -> str:
        """Full UUID of the current version node."""
        return self.uuid

    def change_version(self, uuid: str) -> None:
        """Make ``uuid`` current: a full UUID, unique prefix, ``uuid:branch``, ``:branch``
        or ``tag:NAME`` (docs/versioning.md has the grammar).

        Raises
        ------
        NotFoundError
            No such node in this repo.
        InvalidInputError
            An ambiguous prefix.
        """
        self._view = self._open_view(self._graph.resolve(uuid))

    def lock_node(self, message: str) -> None:
        """Lock the current node forever with commit ``message``.

        Cost is proportional to the chunks written in this node, not to array size or
        history. Pyramids are brought up to date first, at a cost proportional to the
        chunks they cover (see docs/pyramids.md). Raises :class:`LockedError` if it is
        already locked.
        """
        if not isinstance(message, str):
            raise InvalidInputError(f"the lock message must be a string, not {message!r}")
        view = self._writable_view()
        if view.locked:
            raise LockedError(f"version node {self.uuid} is already locked")
        seen = before_lock(self._ctx, view)
        view.lock(message, prepare=lambda arrays: after_seal(self._ctx, view, arrays, seen))
        # ``view`` now reads the locked version (the lock switched it to the manifest it
        # wrote): no need to read the record and manifest back.
        self._view = view

    def create_branch(self, message: str, name: str | None = None) -> str:
        """Create an open child of the current (locked) node; return its UUID.

        Without ``name`` the child continues the current node's branch (a node has at most
        one such child); with a new ``name`` it starts that branch. The current version
        does not change: call :meth:`change_version` with the returned UUID to write there.

        Raises
        ------
        InvalidInputError
            The current node is open (lock it first), or the name is invalid.
        AlreadyExistsError
            The branch name is taken, or the node already has a child on its branch.
        """
        if self.readonly:
            raise LockedError(f"repo {self.name!r} was opened read-only")
        if not isinstance(message, str):
            raise InvalidInputError(f"the branch message must be a string, not {message!r}")
        return self._graph.create_child(self._graph.node(self.uuid), message, name).uuid

    def get_commit_log(self) -> list[tuple[str, str]]:
        """``[(uuid, message), ...]`` from the root to the current node (oldest first).

        The message of a locked node is its lock message; an open node reads
        ``"(open node)"`` (as in DICED).
        """
        return [(r.uuid, r.lock_message if r.locked else "(open node)")
                for r in self._graph.log(self.uuid)]

    def list_nodes(self) -> list[NodeInfo]:
        """Every node of the repo's version DAG, oldest first, with parents and children."""
        dag = self._graph.nodes()
        leaves = {}
        for node in dag.values():
            if not any(dag[c].record.branch == node.record.branch for c in node.children):
                leaves[node.record.uuid] = True
        return [
            NodeInfo(uuid=n.record.uuid, parents=n.record.parents, children=n.children,
                     branch=n.record.branch, note=n.record.note, locked=n.record.locked,
                     created=n.record.created, locked_at=n.record.locked_at,
                     lock_message=n.record.lock_message,
                     is_branch_leaf=n.record.uuid in leaves)
            for n in sorted(dag.values(), key=lambda n: n.record.created)
        ]

    def delete_branch(self, name: str) -> BranchDeletion:
        """Remove branch ``name``'s versions that nothing else needs, newest first.

        Versions with a child on another branch, a tag, or the repo's root are kept (with
        that much of the branch before them); the report says which and why. Their data
        is freed by the next ``store.gc()`` after the grace period (docs/lifecycle.md).

        Raises
        ------
        NotFoundError
            No such branch.
        InvalidInputError
            Nothing of it can be deleted (the message says why).
        """
        self._writable_view()
        try:
            return delete_branch(VersionGraph(self._ctx.backend, self.repo_uuid),
                                 validate_branch_name(name))
        finally:
            self._forget_attachments()

    def delete_version(self, uuid: str) -> None:
        """Abandon the open leaf version ``uuid`` (a UUID, prefix or ``:branch``).

        Writes in flight there fail with :class:`ConflictError`. Locked versions are
        removed with their branch (:meth:`delete_branch`).
        """
        self._writable_view()
        graph = VersionGraph(self._ctx.backend, self.repo_uuid)
        try:
            delete_version(graph, graph.resolve(uuid))
        finally:
            self._forget_attachments()

    def _forget_attachments(self) -> None:
        # The graph caches which nodes are attached; a deletion detaches some.
        self._graph = VersionGraph(self._ctx.backend, self.repo_uuid)

    def storage_report(self, version: str | None = None) -> RepoUsage:
        """Stored (compressed) bytes of every version (or only ``version``) and array:
        what each needs, and how much of it no parent needs (``diced du``)."""
        chosen = None if version is None else [self._graph.resolve(version)]
        # A lifecycle service above this API (as diced.io is): loaded by name.
        sizes = importlib.import_module("diced.lifecycle.sizes")
        usage: RepoUsage = sizes.repo_usage(self._ctx.backend, self.repo_uuid, self.name,
                                            versions=chosen, cache=self._ctx.page_cache)
        return usage

    def node_record(self, uuid: str | None = None) -> NodeRecord:
        """The stored record of ``uuid`` (default: the current node)."""
        return self._graph.node(self._graph.resolve(uuid) if uuid else self.uuid)

    # -- arrays -----------------------------------------------------------------------------

    def create_array(self, name: str, dtype: ArrayDtype | Any, dims: int = 3,
                     shape: Sequence[int] | None = None, chunks: Sequence[int] | None = None,
                     islabel3D: bool = False,
                     lossycompression: bool = False, *,
                     dimension_names: Sequence[str] | None = None,
                     voxel_size: Sequence[float] | None = None,
                     unit: str | None = None, pyramid: bool = False) -> DicedArray:
        """Create an array at the current (open) node and return it.

        Parameters
        ----------
        name
            Letters, digits, ``_ . -`` (not starting with ``.`` or ``-``), unique here.
        dtype
            An :class:`ArrayDtype` or any numpy bool/int/uint/float dtype.
        dims
            Number of dimensions when ``shape`` is not given.
        shape
            Fixed shape; ``None`` makes an unbounded array (2³¹−1 per axis, sparse).
        chunks
            Chunk shape; default 64³ (3-D), 512² (2-D), 262144 (1-D).
        islabel3D
            Flag a 3-D uint64 label volume (the viewer colours its ids).
        lossycompression
            JPEG-compress a uint8 array (needs imagecodecs).
        dimension_names
            One distinct name per axis; default ``("z", "y", "x")`` in 3-D, ``("y", "x")``
            in 2-D (:data:`diced.zarr_ome.DEFAULT_DIMENSION_NAMES` for others). xarray names
            its dimensions by them; ``t``/``c`` mark OME-NGFF time and channel axes.
        voxel_size
            Physical size of a voxel along each axis (default 1 each), e.g. ``(40, 8, 8)``.
        unit
            OME-NGFF space unit of ``voxel_size``, e.g. ``"nanometer"``. Change both later
            with :meth:`DicedArray.set_voxel_size` at an open version.
        pyramid
            Keep a multiscale pyramid of the array with the default levels, factors and
            method (``arr.build_pyramid()``); see docs/pyramids.md.

        Raises
        ------
        InvalidInputError
            Bad name, dtype, dims, shape, chunks or flag combination.
        AlreadyExistsError
            An array of that name exists at this node.
        LockedError
            The current node is locked.
        """
        view = self._writable_view()
        if not isinstance(name, str) or not ARRAY_NAME.match(name):
            raise InvalidInputError(
                f"invalid array name {name!r}: use letters, digits, '_', '.', '-' (up to 200, "
                "not starting with '.' or '-')"
            )
        if is_level_name(name):
            raise InvalidInputError(f"invalid array name {name!r}: names ending in '.s' and "
                                    "digits are reserved for pyramid levels")
        np_dtype = _parse_dtype(dtype)
        if shape is not None:
            shape = check_shape(shape, "shape")
            if dims not in (3, len(shape)):
                raise InvalidInputError(f"dims={dims} disagrees with shape {shape}")
            dims = len(shape)
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 32:
            raise InvalidInputError(f"dims must be an integer from 1 to 32, got {dims!r}")
        chunk_shape = _default_chunks(dims) if chunks is None \
            else check_shape(chunks, "chunks", dims, minimum=1)
        if int(np.prod(chunk_shape, dtype=object)) > MAX_CHUNK_ELEMENTS:
            raise InvalidInputError(f"chunks {chunk_shape} hold more than 2**28 elements; "
                                    "choose smaller chunks (64³ is the default in 3-D)")
        if islabel3D and (dims != 3 or np_dtype != np.uint64):
            raise InvalidInputError("islabel3D=True needs a 3-D uint64 array (ArrayDtype.uint64)")
        if lossycompression and np_dtype != np.uint8:
            raise InvalidInputError("lossycompression=True (JPEG) needs a uint8 array")
        names = ome.dimension_names_of({"shape": (0,) * dims}) if dimension_names is None \
            else ome.check_dimension_names(dimension_names, dims)
        diced_attributes: dict[str, Any] = {"islabel3D": bool(islabel3D),
                                            "unbounded": shape is None,
                                            "lossycompression": bool(lossycompression)}
        if voxel_size is not None:
            diced_attributes["voxel_size"] = list(ome.check_voxel_size(voxel_size, dims))
        if ome.check_unit(unit) is not None:
            diced_attributes["unit"] = unit
        meta = _zarr_metadata(shape if shape is not None else (UNBOUNDED,) * dims,
                              chunk_shape, np_dtype, {"diced": diced_attributes},
                              lossycompression, names)
        view.create_array(name, meta)
        if pyramid:
            spec = plan_spec(name, tuple(meta["shape"]), chunk_shape, np_dtype, islabel3D,
                             None, None, None)
            bring_up(self._ctx, view, name, spec, False)
        return DicedArray(self._ctx, view, view.array(name), readonly=self.readonly)

    def get_array(self, name: str) -> DicedArray:
        """The array ``name`` at the current node; :class:`NotFoundError` if absent."""
        if not isinstance(name, str):
            raise InvalidInputError(f"an array name is a string, not {name!r:.80}")
        self._view.refresh()
        return DicedArray(self._ctx, self._view, self._view.array(name), readonly=self.readonly)

    def list_instances(self) -> list[tuple[str, ArrayDtype | np.dtype[Any]]]:
        """``[(name, dtype), ...]`` of the arrays at the current node, sorted by name.

        The dtype is an :class:`ArrayDtype` member where one matches (DICED behaviour),
        else the numpy dtype.
        """
        out: list[tuple[str, ArrayDtype | np.dtype[Any]]] = []
        self._view.refresh()
        for name, info in self._view.arrays().items():
            np_dtype = metadata_of(info).dtype.to_native_dtype()
            match = [m for m in ArrayDtype if np.dtype(m.value) == np_dtype]
            out.append((name, match[0] if match else np_dtype))
        return out

    def delete_array(self, name: str) -> None:
        """Delete array ``name`` at the current (open) node; ancestors keep it.

        The levels of its pyramid go with it; a level alone cannot be deleted
        (:class:`InvalidInputError`): use ``delete_pyramid()`` on its array.
        """
        view = self._writable_view()
        check_deletable(view, name)
        info = view.find_array(name) if isinstance(name, str) else None
        view.delete_array(name)
        if info is not None and pyramid_of(name, info.zarr) is not None:
            delete_levels(view, name)

    def zarr_store(self) -> NodeStore:
        """A zarr v3 Store of the current node (read-only when locked or readonly)."""
        self._view.refresh()
        return NodeStore(self._ctx, self._view, read_only=self.readonly)

    # -- files ------------------------------------------------------------------------------

    def upload_filedata(self, name: str, data: bytes | str) -> None:
        """Store file ``name`` (``str`` is UTF-8 encoded) at the current open node."""
        _check_file_name(name)
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"file data must be bytes or str, not {type(data).__name__}")
        self._writable_view().write_file(name, bytes(data))

    def download_filedata(self, name: str) -> bytes:
        """The bytes of file ``name`` at the current node; :class:`NotFoundError` if absent."""
        self._view.refresh()
        return self._view.read_file(_check_file_name(name))

    def list_files(self) -> list[str]:
        """Names of the files at the current node, sorted."""
        self._view.refresh()
        return sorted(self._view.files())

    def delete_file(self, name: str) -> None:
        """Delete file ``name`` at the current open node; ancestors keep it."""
        self._writable_view().delete_file(_check_file_name(name))


def _check_file_name(name: str) -> str:
    # 1024 UTF-8 bytes keeps the longest encoded key within every filesystem's path limit.
    if not isinstance(name, str) or not name or "\x00" in name \
            or len(name.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidInputError(
            f"invalid file name {repr(name)[:80]}: use 1 to 1024 bytes of UTF-8, no NUL"
        )
    return name


def _parse_dtype(dtype: Any) -> np.dtype[Any]:
    if dtype is None:
        raise InvalidInputError("create_array needs a dtype, e.g. ArrayDtype.uint8 or "
                                "numpy.float32")
    try:
        np_dtype: np.dtype[Any] = np.dtype(dtype.value if isinstance(dtype, ArrayDtype)
                                           else dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"unknown dtype {dtype!r:.80}: {exc}") from exc
    if np_dtype.kind not in "biuf" or np_dtype.byteorder == ">" \
            or (np_dtype.kind == "f" and np_dtype.itemsize > 8):
        raise InvalidInputError(
            f"dtype {np_dtype} is not supported: use a bool, int, uint or float dtype of up "
            "to 64 bits"
        )
    return np_dtype
