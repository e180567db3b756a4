"""The key layout of a diced store; every object key is built here and nowhere else.

See ``docs/format.md`` for what each object holds, who writes it and when.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from diced.errors import StorageError

__all__ = [
    "STORE_HEADER",
    "array_entries_prefix",
    "array_entry",
    "blob",
    "branch_claim",
    "branch_head",
    "chunk_pointer",
    "chunk_pointer_coords",
    "chunk_pointers_prefix",
    "decode_name",
    "encode_name",
    "file_pointer",
    "file_pointers_prefix",
    "is_immutable",
    "manifest",
    "next_claim",
    "node_record",
    "node_records_prefix",
    "open_node_prefix",
    "page",
    "repo_name",
    "repo_names_prefix",
    "repo_prefix",
    "repo_record",
    "tag_record",
    "tags_prefix",
]

STORE_HEADER = "diced.json"


_SEGMENT = 200


def encode_name(name: str) -> str:
    """Encode a user-chosen name (any characters, ``/`` included) as a key path, reversibly.

    Percent-encoding makes the name one segment; a leading dot is escaped too (``.`` and
    ``..`` are not valid segments). Encoded names longer than 200 characters are cut into
    200-character segments joined by ``+/`` (a raw ``+`` never occurs in the encoding), so
    every segment fits a filesystem's name limit and no name's key is a ``/``-prefix of
    another's.
    """
    encoded = quote(name, safe="")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    parts = [encoded[i:i + _SEGMENT] for i in range(0, len(encoded), _SEGMENT)]
    if parts[-1] in (".", ".."):
        # Only a last, short segment can be all dots (a first one is escaped above).
        parts[-1] = parts[-1].replace(".", "%2E")
    return "+/".join(parts)


def decode_name(segment: str) -> str:
    """Invert :func:`encode_name`."""
    return unquote(segment.replace("+/", ""))


def repo_name(name: str) -> str:
    """Create-only claim of a repo name; holds the repo UUID."""
    return f"names/{encode_name(name)}"


def repo_names_prefix() -> str:
    return "names/"


def repo_prefix(repo: str) -> str:
    """Everything a repo owns lives below this prefix."""
    return f"repos/{repo}/"


def repo_record(repo: str) -> str:
    return f"repos/{repo}/repo.json"


def node_record(repo: str, node: str) -> str:
    return f"repos/{repo}/nodes/{node}.json"


def node_records_prefix(repo: str) -> str:
    return f"repos/{repo}/nodes/"


def branch_claim(repo: str, branch: str) -> str:
    """Create-only claim naming the first node of ``branch`` (branch names are unique)."""
    return f"repos/{repo}/branches/{encode_name(branch)}"


def branch_head(repo: str, branch: str) -> str:
    """Best-effort hint: a recent node of ``branch``; the leaf is found by following claims."""
    return f"repos/{repo}/heads/{encode_name(branch)}"


def next_claim(repo: str, parent: str, branch: str) -> str:
    """Create-only claim naming the one child of ``parent`` that continues ``branch``."""
    return f"repos/{repo}/next/{parent}/{encode_name(branch)}"


def tag_record(repo: str, name: str) -> str:
    """Create-only record of tag ``name``: the locked node it names forever (see tags.py)."""
    return f"repos/{repo}/tags/{encode_name(name)}"


def tags_prefix(repo: str) -> str:
    """Every tag record of ``repo`` lives below this prefix."""
    return f"repos/{repo}/tags/"


def open_node_prefix(repo: str, node: str) -> str:
    """Mutable state of an open node (array entries, chunk and file pointers)."""
    return f"repos/{repo}/open/{node}/"


def array_entry(repo: str, node: str, name: str) -> str:
    return f"repos/{repo}/open/{node}/arrays/{name}"


def array_entries_prefix(repo: str, node: str) -> str:
    return f"repos/{repo}/open/{node}/arrays/"


def chunk_pointer(repo: str, node: str, array_id: str, coords: tuple[int, ...]) -> str:
    """Pointer of the chunk at ``coords`` (storage-grid coordinates) written at an open node.

    The chunk part is ``c/<i>/<j>/...`` (``c`` alone for a 0-d array) whatever chunk key
    encoding the array's zarr metadata names: the store layout never depends on it.
    """
    return f"repos/{repo}/open/{node}/chunks/{array_id}/" + "/".join(("c", *map(str, coords)))


def chunk_pointer_coords(key: str, prefix: str, ndim: int) -> tuple[int, ...]:
    """Coordinates of a pointer key listed under ``chunk_pointers_prefix`` (= ``prefix``).

    Raises
    ------
    StorageError
        The key is not a pointer diced writes for an array of ``ndim`` dimensions (a
        damaged store, or an object placed there by hand).
    """
    parts = key[len(prefix):].split("/") if key.startswith(prefix) else []
    if (len(parts) == ndim + 1 and parts[0] == "c"
            and all(p.isdigit() and (p == "0" or p[0] != "0") for p in parts[1:])):
        return tuple(int(p) for p in parts[1:])
    raise StorageError(
        f"{key!r} is not a chunk pointer of a {ndim}-D array: the store is damaged; move "
        "the object away (it holds no data diced wrote) and retry"
    )


def chunk_pointers_prefix(repo: str, node: str, array_id: str) -> str:
    return f"repos/{repo}/open/{node}/chunks/{array_id}/"


def file_pointer(repo: str, node: str, name: str) -> str:
    return f"repos/{repo}/open/{node}/files/{encode_name(name)}"


def file_pointers_prefix(repo: str, node: str) -> str:
    return f"repos/{repo}/open/{node}/files/"


def blob(repo: str, hexdigest: str) -> str:
    """Immutable, content-addressed bytes of a chunk or a file."""
    return f"repos/{repo}/blobs/{hexdigest[:2]}/{hexdigest[2:]}"


def page(repo: str, hexdigest: str) -> str:
    """Immutable, content-addressed chunk-index page."""
    return f"repos/{repo}/pages/{hexdigest[:2]}/{hexdigest[2:]}"


def manifest(repo: str, hexdigest: str) -> str:
    """Immutable, content-addressed manifest of a locked node."""
    return f"repos/{repo}/manifests/{hexdigest}.json"


_IMMUTABLE = re.compile(r"^repos/[^/]+/(blobs/[0-9a-f]{2}/[0-9a-f]+|pages/[0-9a-f]{2}/[0-9a-f]+"
                        r"|manifests/[0-9a-f]+\.json)$")


def is_immutable(key: str) -> bool:
    """Whether ``key`` names a blob, an index page or a manifest.

    Those objects are content-addressed and create-only: once a key exists its bytes never
    change, so they may be cached anywhere without invalidation (see
    :class:`diced.backends.CachedObjectStore`).
    """
    return _IMMUTABLE.match(key) is not None
