"""Walks of a repo's version DAG: the full log, merge bases, time travel and chunk blame.

Every walk reads node records through :class:`~diced.versioning.graph.VersionGraph`
(attached nodes only) and follows parent edges, merge parents included, so it sees the
DAG exactly as :meth:`VersionGraph.nodes` lists it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from diced.errors import InvalidInputError, NotFoundError
from diced.versioning.chunkindex import ChunkIndex, PageCache
from diced.versioning.graph import VersionGraph
from diced.versioning.node import NodeView, load_manifest
from diced.versioning.records import NodeRecord

__all__ = ["ChunkChange", "ancestry", "chunk_history", "merge_base", "parse_time",
           "version_at"]

Coords = tuple[int, ...]


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def parse_time(when: datetime | str) -> datetime:
    """``when`` (a datetime, or an ISO-8601 string) as an aware datetime; naive means UTC.

    Raises :class:`InvalidInputError` for anything else.
    """
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.strip())
        except ValueError:
            raise InvalidInputError(
                f"{when!r:.80} is not an ISO-8601 time; write it like 2024-05-01 or "
                "2024-05-01T12:30:00+02:00 (no time zone: UTC)") from None
    if not isinstance(when, datetime):
        raise InvalidInputError(f"a time must be a datetime or an ISO-8601 string, not "
                                f"{when!r:.80}")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def ancestry(graph: VersionGraph, uuid: str) -> list[NodeRecord]:
    """``uuid`` and every node it descends from (merge parents included), newest first.

    The order is topological — a node comes before all of its parents — with newer nodes
    (by creation time) first among those whose children have all been listed.
    """
    records: dict[str, NodeRecord] = {}
    children: dict[str, int] = {}
    todo = [uuid]
    while todo:
        record = graph.node(todo.pop())
        if record.uuid in records:
            continue
        records[record.uuid] = record
        for parent in record.parents:
            children[parent] = children.get(parent, 0) + 1
            if parent not in records:
                todo.append(parent)
    ready = [(-_time(records[uuid].created), uuid)]
    out = []
    while ready:
        _, current = heapq.heappop(ready)
        record = records[current]
        out.append(record)
        for parent in record.parents:
            children[parent] -= 1
            if children[parent] == 0:
                heapq.heappush(ready, (-_time(records[parent].created), parent))
    return out


def merge_base(graph: VersionGraph, uuids: Sequence[str]) -> NodeRecord:
    """The lowest common ancestor of ``uuids`` (a node is its own ancestor).

    Nodes reached from every one of ``uuids`` are common ancestors; the lowest are those
    with no common descendant. The walk goes from the given nodes towards the root, newest
    first, and stops once every node still to visit is known to lie below a common
    ancestor (git's "paint down to common"), so it reads only the nodes between the given
    ones and their merge base. Several lowest common ancestors (criss-cross merges) are
    possible: the newest is chosen.
    """
    full = (1 << len(uuids)) - 1
    stale = 1 << len(uuids)
    records: dict[str, NodeRecord] = {}
    flags: dict[str, int] = {}
    queue: list[tuple[float, str]] = []

    def reach(uuid: str, flag: int) -> None:
        if flags.get(uuid, 0) | flag == flags.get(uuid, 0):
            return
        if uuid not in records:
            records[uuid] = graph.node(uuid)
        flags[uuid] = flags.get(uuid, 0) | flag
        heapq.heappush(queue, (-_time(records[uuid].created), uuid))

    for i, uuid in enumerate(uuids):
        reach(uuid, 1 << i)
    found: list[str] = []
    while any(not flags[u] & stale for _, u in queue):
        _, uuid = heapq.heappop(queue)
        flag = flags[uuid]
        if flag & full == full and not flag & stale:
            found.append(uuid)
            flag |= stale
            flags[uuid] = flag
        for parent in records[uuid].parents:
            reach(parent, flag)
    lowest = found
    if len(found) > 1:  # criss-cross merges: drop bases that are ancestors of other bases
        below = {v: _ancestors(graph, v, records) - {v} for v in found}
        lowest = [u for u in found if not any(u in below[v] for v in found)]
    if not lowest:  # nodes of one repo all descend from its root: only a damaged DAG
        raise NotFoundError(f"versions {', '.join(uuids)} have no common ancestor")
    return max((records[u] for u in lowest), key=lambda r: (_time(r.created), r.uuid))


def _ancestors(graph: VersionGraph, uuid: str, records: dict[str, NodeRecord]) -> set[str]:
    seen: set[str] = set()
    todo = [uuid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in records:
            records[current] = graph.node(current)
        todo.extend(records[current].parents)
    return seen


def version_at(graph: VersionGraph, when: datetime | str, branch: str) -> NodeRecord:
    """The newest node of ``branch`` locked at or before ``when`` (see :func:`parse_time`).

    Walks the branch back from its leaf along first parents: O(nodes of the branch
    locked after ``when``).

    Raises
    ------
    NotFoundError
        The branch does not exist, or none of its nodes was locked by then.
    """
    moment = parse_time(when)
    record = graph.node(graph.branch_leaf(branch))
    while True:
        if record.locked_at is not None and datetime.fromisoformat(record.locked_at) <= moment:
            return record
        if not record.parents:
            break
        parent = graph.node(record.parents[0])
        if parent.branch != branch:
            break  # ``record`` is the branch's first node
        record = parent
    raise NotFoundError(f"no version of branch {branch!r} was locked at or before "
                        f"{moment.isoformat()}")


@dataclass(frozen=True)
class ChunkChange:
    """A version where one chunk of an array changed (see :func:`chunk_history`).

    ``digest`` is the chunk's content digest there (hex), ``None`` if it holds only the
    fill value (deleted, or the array does not exist there).
    """

    uuid: str
    branch: str
    message: str
    when: str
    digest: str | None


def chunk_history(graph: VersionGraph, view: NodeView, cache: PageCache, array: str,
                  coords: Coords) -> list[ChunkChange]:
    """The versions in ``view``'s ancestry where chunk ``coords`` of ``array`` changed.

    A node is listed when the chunk's content there differs from its content in every
    parent (so a merge node is listed only when the merge made new content; a chunk taken
    from one parent is blamed on that parent's history); the root is listed when the
    chunk holds data there. Newest first. Cost: one manifest read and one index lookup
    (O(log n), cached pages) per ancestor, independent of the array's size.
    """
    indexes: dict[int, ChunkIndex] = {}

    def locked_digest(record: NodeRecord) -> bytes | None:
        assert record.manifest is not None
        entry = load_manifest(graph.backend, graph.repo, record.manifest).arrays.get(array)
        if entry is None or len(entry.zarr["shape"]) != len(coords):
            return None
        ndim = len(coords)
        if ndim not in indexes:
            indexes[ndim] = ChunkIndex(graph.backend, graph.repo, ndim, cache)
        return indexes[ndim].lookup(entry.root, entry.height, coords)

    digests: dict[str, bytes | None] = {}

    def digest_at(record: NodeRecord) -> bytes | None:
        if record.uuid not in digests:
            if record.uuid == view.uuid and not view.locked:
                info = view.find_array(array)
                digests[record.uuid] = (None if info is None or info.ndim != len(coords)
                                        else view.chunk_state(info, coords).digest)
            else:
                digests[record.uuid] = locked_digest(record)
        return digests[record.uuid]

    out = []
    records = {r.uuid: r for r in ancestry(graph, view.uuid)}
    for record in records.values():
        here = digest_at(record)
        before: Iterable[bytes | None] = [digest_at(records[p]) for p in record.parents]
        if all(here != b for b in before) and (record.parents or here is not None):
            out.append(ChunkChange(
                uuid=record.uuid, branch=record.branch,
                message=record.lock_message if record.locked else "(open node)",
                when=record.locked_at or record.created,
                digest=None if here is None else here.hex()))
    return out
