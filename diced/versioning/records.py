"""JSON records of the on-store format: store header, repo, node, array entry, manifest.

Every record is a frozen dataclass with ``to_bytes`` / ``from_bytes``; the byte form is
canonical JSON (sorted keys) so equal records have equal bytes, which makes
content-comparing compare-and-swap and content addressing work on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from diced.errors import FormatVersionError

__all__ = [
    "FORMAT_VERSION",
    "ArrayEntry",
    "Manifest",
    "ManifestArray",
    "NodeRecord",
    "NodeState",
    "RepoRecord",
    "check_store_header",
    "now",
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

    @classmethod
    def from_bytes(cls, data: bytes) -> RepoRecord:
        return cls(**json.loads(data))


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

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeRecord:
        d = json.loads(data)
        d["parents"] = tuple(d["parents"])
        return cls(**d)

    def sealed(self) -> NodeRecord:
        return replace(self, state="sealing")

    def with_lock(self, message: str, manifest: str) -> NodeRecord:
        return replace(self, state="locked", lock_message=message, locked_at=now(),
                       manifest=manifest)


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

    @classmethod
    def from_bytes(cls, data: bytes) -> ArrayEntry:
        return cls(**json.loads(data))


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
        ext = d["extents"]
        return cls(id=d["id"], zarr=d["zarr"], root=d["root"], height=d["height"],
                   extents=None if ext is None else tuple((a, b) for a, b in ext))


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
    def from_bytes(cls, data: bytes) -> Manifest:
        d = json.loads(data)
        return cls(arrays={k: ManifestArray.from_json(v) for k, v in d["arrays"].items()},
                   files=dict(d["files"]))
