"""JSON records of the on-store format: store header, repo, node, tag, array entry, manifest.

Every record is a frozen dataclass with ``to_bytes`` / ``from_bytes``; the byte form is
canonical JSON (sorted keys) so equal records have equal bytes, which makes
content-comparing compare-and-swap and content addressing work on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from diced.errors import FormatVersionError, InvalidInputError, LockedError, StorageError

__all__ = [
    "FORMAT_VERSION",
    "ArrayEntry",
    "Manifest",
    "ManifestArray",
    "NodeRecord",
    "NodeState",
    "RepoRecord",
    "TagRecord",
    "check_store_header",
    "corrupt",
    "now",
    "parse_record",
    "parse_uuid",
    "require_locked",
    "store_header",
]

#: Version of the on-store format this diced writes; stores with a larger one are refused.
FORMAT_VERSION = 1

NodeState = Literal["open", "sealing", "locked"]


def now() -> str:
    """Current UTC time as an ISO-8601 string (the form every record stores)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def corrupt(what: str, where: str, detail: object) -> StorageError:
    """The error for an object that exists but cannot be what diced wrote there."""
    return StorageError(
        f"{what} {where!r} is corrupt ({detail}): the store is damaged; restore that object "
        "from a copy of the store (diced fsck lists every damaged object)"
    )


def parse_record(data: bytes, what: str, where: str) -> dict[str, Any]:
    """``data`` as a JSON object; :class:`StorageError` naming ``what`` at ``where`` if not."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise corrupt(what, where, f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise corrupt(what, where, "not a JSON object")
    return obj


def _build(cls: Any, data: bytes, what: str, where: str,
           convert: Any = None) -> Any:
    """Parse ``data`` into ``cls``; every malformed shape is a :class:`StorageError`."""
    d = parse_record(data, what, where)
    try:
        if convert is not None:
            d = convert(d)
        record = cls(**d)
        record.validate()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise corrupt(what, where, f"{type(exc).__name__}: {exc}") from exc
    return record


_UUID = re.compile(r"[0-9a-f]{32}")


def _is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def parse_uuid(data: bytes, what: str, where: str) -> str:
    """The UUID an object such as a claim holds; :class:`StorageError` if it holds another."""
    uuid = data.decode("ascii", "replace")
    if not _is_uuid(uuid):
        raise corrupt(what, where, "not a UUID")
    return uuid


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def store_header() -> bytes:
    """The bytes of ``diced.json`` for a new store."""
    return _dumps({"format": "diced", "format_version": FORMAT_VERSION})


def check_store_header(data: bytes, location: str) -> int:
    """Validate ``diced.json``; return its format version.

    Raises
    ------
    FormatVersionError
        The header is not diced's, or its version is newer than this diced reads.
    """
    try:
        header = json.loads(data)
        version = int(header["format_version"])
        ok = header.get("format") == "diced"
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatVersionError(f"{location!r} has an unreadable diced.json: {exc}") from exc
    if not ok:
        raise FormatVersionError(f"{location!r} holds a diced.json of another format")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"store {location!r} uses diced format version {version}, but this diced reads "
            f"up to version {FORMAT_VERSION}: upgrade diced (pip install -U diced)"
        )
    return version


@dataclass(frozen=True)
class RepoRecord:
    """A repository: unique name, free-text description, UUID and creation time."""

    uuid: str
    name: str
    description: str
    created: str
    root: str

    def to_bytes(self) -> bytes:
        return _dumps(asdict(self))

    def validate(self) -> None:
        """Raise ``ValueError`` unless every field has the type and form diced writes."""
        _require(_is_uuid(self.uuid) and _is_uuid(self.root), "bad uuid")
        _require(all(isinstance(v, str) for v in (self.name, self.description, self.created)),
                 "bad field type")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "repo.json") -> RepoRecord:
        """Parse; :class:`StorageError` naming ``where`` when the bytes are not a record."""
        record: RepoRecord = _build(cls, data, "repo record", where)
        return record


@dataclass(frozen=True)
class NodeRecord:
    """A version node. ``state`` only moves open → sealing → locked.

    ``sealing`` means a lock is in progress (or was interrupted): the node accepts no
    new writes and reads like an open node until the lock completes.
    """

    uuid: str
    repo: str
    parents: tuple[str, ...]
    branch: str
    note: str
    created: str
    state: NodeState = "open"
    lock_message: str = ""
    locked_at: str | None = None
    manifest: str | None = None

    @property
    def locked(self) -> bool:
        return self.state == "locked"

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d["parents"] = list(self.parents)
        return _dumps(d)

    def validate(self) -> None:
        """Raise ``ValueError`` unless every field has the type and form diced writes."""
        _require(_is_uuid(self.uuid) and _is_uuid(self.repo), "bad uuid")
        _require(all(_is_uuid(p) for p in self.parents), "bad parent uuid")
        _require(self.state in ("open", "sealing", "locked"), f"bad state {self.state!r}")
        _require(all(isinstance(v, str) for v in (self.branch, self.note, self.created,
                                                   self.lock_message)), "bad field type")
        _require(self.state != "locked" or (isinstance(self.manifest, str)
                                            and len(self.manifest) == 32),
                 "a locked node without a manifest")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "node record") -> NodeRecord:
        """Parse; :class:`StorageError` naming ``where`` when the bytes are not a record."""
        def convert(d: dict[str, Any]) -> dict[str, Any]:
            _require(isinstance(d.get("parents"), list), "parents is not a list")
            return {**d, "parents": tuple(d["parents"])}

        record: NodeRecord = _build(cls, data, "node record", where, convert)
        return record

    def sealed(self) -> NodeRecord:
        return replace(self, state="sealing")

    def with_lock(self, message: str, manifest: str) -> NodeRecord:
        return replace(self, state="locked", lock_message=message, locked_at=now(),
                       manifest=manifest)


def require_locked(record: NodeRecord, action: str) -> None:
    """Raise unless ``record`` is locked; ``action`` ("before <action>") completes the advice.

    Raises
    ------
    LockedError
        The node has an unfinished lock (``lock_node`` again finishes it).
    InvalidInputError
        The node is open.
    """
    if record.state == "sealing":
        raise LockedError(
            f"version node {record.uuid} has an unfinished lock (state 'sealing', e.g. its "
            "process was killed while locking): call lock_node(message) on it again to "
            f"finish the lock before {action}"
        )
    if not record.locked:
        raise InvalidInputError(
            f"version node {record.uuid} is open: lock it with lock_node(message) before "
            f"{action}"
        )


@dataclass(frozen=True)
class TagRecord:
    """A tag: a name given to one locked node of a repo, with a message and a time.

    Written create-only and never changed: a tag never moves (it can only be deleted).
    """

    name: str
    uuid: str
    message: str
    created: str

    def to_bytes(self) -> bytes:
        return _dumps(asdict(self))

    def validate(self) -> None:
        """Raise ``ValueError`` unless every field has the type and form diced writes."""
        _require(_is_uuid(self.uuid), "bad uuid")
        _require(all(isinstance(v, str) for v in (self.name, self.message, self.created)),
                 "bad field type")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "tag record") -> TagRecord:
        """Parse; :class:`StorageError` naming ``where`` when the bytes are not a record."""
        record: TagRecord = _build(cls, data, "tag record", where)
        return record


@dataclass(frozen=True)
class ArrayEntry:
    """An array as an open node sees it: identity, zarr metadata, or a deletion marker.

    ``id`` changes when an array is deleted and created again under the same name, so
    chunks of the old array are never visible through the new one.
    """

    id: str
    zarr: Mapping[str, Any] = field(default_factory=dict)
    deleted: bool = False

    def to_bytes(self) -> bytes:
        return _dumps({"id": self.id, "zarr": dict(self.zarr), "deleted": self.deleted})

    def validate(self) -> None:
        """Raise ``ValueError`` unless every field has the type and form diced writes."""
        _require(_is_uuid(self.id), "bad array id")
        _require(isinstance(self.zarr, dict) and isinstance(self.deleted, bool),
                 "bad field type")
        _require(self.deleted or isinstance(self.zarr.get("shape"), list),
                 "zarr metadata without a shape")

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "array entry") -> ArrayEntry:
        """Parse; :class:`StorageError` naming ``where`` when the bytes are not an entry."""
        entry: ArrayEntry = _build(cls, data, "array entry", where)
        return entry


@dataclass(frozen=True)
class ManifestArray:
    """An array in a locked node: its entry plus the root of its chunk index.

    ``extents`` is the chunk-aligned bounding box (in chunk coordinates, half-open per
    axis) of every chunk ever written along this history, or ``None`` if none was.
    """

    id: str
    zarr: Mapping[str, Any]
    root: str | None
    height: int
    extents: tuple[tuple[int, int], ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "zarr": dict(self.zarr), "root": self.root,
                "height": self.height,
                "extents": None if self.extents is None else [list(e) for e in self.extents]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ManifestArray:
        """Parse one array of a manifest; ``ValueError``/``KeyError``/``TypeError`` if bad."""
        ext = d["extents"]
        array = cls(id=d["id"], zarr=d["zarr"], root=d["root"], height=d["height"],
                    extents=None if ext is None else tuple((int(a), int(b)) for a, b in ext))
        _require(_is_uuid(array.id) and isinstance(array.zarr, dict)
                 and isinstance(array.zarr.get("shape"), list), "bad array")
        _require(isinstance(array.height, int) and array.height >= 1, "bad tree height")
        _require(array.root is None or (isinstance(array.root, str) and len(array.root) == 32),
                 "bad tree root")
        return array


@dataclass(frozen=True)
class Manifest:
    """The complete, immutable content of a locked node: arrays and files."""

    arrays: Mapping[str, ManifestArray] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return _dumps({"format_version": FORMAT_VERSION,
                       "arrays": {k: v.to_json() for k, v in self.arrays.items()},
                       "files": dict(self.files)})

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> Manifest:
        """Parse; :class:`StorageError` naming ``where`` when the bytes are not a manifest."""
        d = parse_record(data, "manifest", where)
        try:
            manifest = cls(arrays={str(k): ManifestArray.from_json(v)
                                   for k, v in d["arrays"].items()},
                           files=dict(d["files"]))
            _require(all(isinstance(v, str) and len(v) == 32 for v in manifest.files.values()),
                     "bad file digest")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise corrupt("manifest", where, f"{type(exc).__name__}: {exc}") from exc
        return manifest
