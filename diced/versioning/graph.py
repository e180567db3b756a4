"""The version DAG of one repo: node records, branch claims, lookups and the log.

Nodes are created in two steps: the node record is written create-only, then a *claim*
is written create-only to attach it to the DAG. A node whose claim does not name it (a
racer that lost, or a process killed between the two writes) is not part of the DAG.
The claim of a node is:

* ``branches/<branch>`` for the first node of a branch (the repo root starts ``master``),
  which makes branch names unique in a repo;
* ``next/<parent>/<branch>`` for a child continuing its parent's branch, which makes every
  branch a single chain (its leaf is found by following these claims).

A node copied from another store whose claim slot here is taken by another node (the
histories diverged) is attached by a *graft* instead, ``grafts/<uuid>``: it is part of the
DAG, reachable by UUID, but not on the chain of its branch name here.
A merge node has several parents; it is claimed like a child of its *first* parent (so
it continues that parent's branch, or starts a new named one), and attachment is always
checked against the first parent. Its other parents are edges of the DAG, not claims.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diced.backends import ObjectStore
from diced.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)
from diced.versioning import keys
from diced.versioning.records import NodeRecord, now, parse_uuid, require_locked
from diced.versioning.tags import TAG_PREFIX, Tags

__all__ = ["DEFAULT_BRANCH", "DagNode", "VersionGraph", "new_uuid", "validate_branch_name"]

DEFAULT_BRANCH = "master"


def new_uuid() -> str:
    """A fresh node or repo UUID: 32 lowercase hex digits."""
    return uuidlib.uuid4().hex


def validate_branch_name(name: str) -> str:
    """Return ``name`` if it can name a branch, else raise :class:`InvalidInputError`."""
    if not isinstance(name, str) or not name or ":" in name or len(name) > 200 \
            or not name.isprintable():
        raise InvalidInputError(
            f"invalid branch name {name!r}: use 1-200 printable characters without ':'"
        )
    return name


@dataclass(frozen=True)
class DagNode:
    """A node of the DAG listing: its record plus the UUIDs of its children."""

    record: NodeRecord
    children: tuple[str, ...]


class VersionGraph:
    """Lookups and updates of one repo's version DAG.

    Records of nodes known to be attached are cached: a node leaves the DAG only when
    ``delete_branch`` or ``delete_version`` removes it, which a graph made earlier notices
    only when it is made again; the only later change to a record (locking) is re-read by
    :meth:`node` on request.
    """

    def __init__(self, backend: ObjectStore, repo: str) -> None:
        self.backend = backend
        self.repo = repo
        self._attached: set[str] = set()

    # -- records and attachment -------------------------------------------------------------

    def _read_record(self, uuid: str) -> NodeRecord | None:
        key = keys.node_record(self.repo, uuid)
        data = self.backend.get(key)
        return None if data is None else NodeRecord.from_bytes(data, key)

    def _claim_key(self, record: NodeRecord, parent: NodeRecord | None) -> str:
        if parent is None or parent.branch != record.branch:
            return keys.branch_claim(self.repo, record.branch)
        return keys.next_claim(self.repo, parent.uuid, record.branch)

    def claim_key(self, record: NodeRecord, parent: NodeRecord | None) -> str:
        """The key of the claim that attaches ``record`` (``parent``: its first parent's)."""
        return self._claim_key(record, parent)

    def is_attached(self, record: NodeRecord, parent: NodeRecord | None) -> bool:
        """Whether ``record`` is part of the DAG: its claim (or a graft) names it."""
        return self._is_attached(record, parent)

    def _is_attached(self, record: NodeRecord, parent: NodeRecord | None) -> bool:
        if record.uuid in self._attached:
            return True
        claim = self.backend.get(self._claim_key(record, parent))
        # A graft attaches a node copied from another store whose claim there names it
        # but here names another node (histories that diverged; see diced.lifecycle.sync).
        if (claim is not None and claim == record.uuid.encode()) or (
                self.backend.get(keys.graft(self.repo, record.uuid)) == record.uuid.encode()):
            self._attached.add(record.uuid)
            return True
        return False

    def node(self, uuid: str) -> NodeRecord:
        """The current record of node ``uuid`` (full UUID); :class:`NotFoundError` if absent."""
        record = self._read_record(uuid) if len(uuid) == 32 else None
        if record is not None and uuid not in self._attached:
            parent = self._read_record(record.parents[0]) if record.parents else None
            if not self._is_attached(record, parent):
                record = None
        if record is None:
            raise NotFoundError(f"no version node {uuid!r} in repo {self.repo}")
        return record

    def nodes(self) -> dict[str, DagNode]:
        """Every attached node with its children (the whole DAG), by UUID."""
        prefix = keys.node_records_prefix(self.repo)
        records = {}
        for key in self.backend.list_prefix(prefix):
            data = self.backend.get(key)
            if data is not None:
                record = NodeRecord.from_bytes(data, key)
                records[record.uuid] = record
        attached = {
            u: r for u, r in records.items()
            if self._is_attached(r, records.get(r.parents[0]) if r.parents else None)
        }
        children: dict[str, list[str]] = {u: [] for u in attached}
        for record in sorted(attached.values(), key=lambda r: r.created):
            for p in record.parents:
                if p in children:
                    children[p].append(record.uuid)
        return {u: DagNode(r, tuple(children[u])) for u, r in attached.items()}

    # -- addressing -------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """Full UUID for ``ref``: a full UUID, a unique prefix, ``uuid:branch``, ``:branch``
        or ``tag:NAME`` (the grammar is documented in docs/versioning.md).

        ``uuid:branch`` and ``:branch`` name the leaf (newest node) of that branch;
        ``tag:NAME`` the node tagged ``NAME``.

        Raises
        ------
        NotFoundError
            No node matches, or the branch or tag does not exist.
        InvalidInputError
            The prefix matches several nodes, or ``ref`` is not a string.
        """
        if not isinstance(ref, str) or not ref:
            raise InvalidInputError(f"a version must be a non-empty UUID string, not {ref!r}")
        if ref.startswith(TAG_PREFIX):
            return self.node(Tags(self.backend, self.repo).get(ref[len(TAG_PREFIX):]).uuid).uuid
        if ":" in ref:
            prefix, branch = ref.split(":", 1)
            if prefix:
                self.resolve(prefix)
            return self.branch_leaf(branch)
        ref = ref.lower()
        if len(ref) == 32:
            return self.node(ref).uuid
        matches = [u for u in self.nodes() if u.startswith(ref)]
        if not matches:
            raise NotFoundError(f"no version node starts with {ref!r} in repo {self.repo}")
        if len(matches) > 1:
            raise InvalidInputError(
                f"version prefix {ref!r} is ambiguous ({len(matches)} nodes match: "
                f"{', '.join(sorted(matches)[:4])}...); give more digits"
            )
        return matches[0]

    def _claimed_uuid(self, key: str) -> str | None:
        """The node UUID a claim at ``key`` holds; :class:`StorageError` if it is damaged."""
        data = self.backend.get(key)
        return None if data is None else parse_uuid(data, "branch claim", key)

    def _usable_hint(self, branch: str) -> str | None:
        """The ``heads/`` hint of ``branch`` if it names an attached node of that branch.

        The hint is overwritten freely and never trusted: garbage or a stale value only
        costs walking the branch's claims from its first node.
        """
        data = self.backend.get(keys.branch_head(self.repo, branch))
        hint = None if data is None else data.decode("ascii", "replace")
        if hint is None or len(hint) != 32:
            return None
        try:
            record = self.node(hint)
        except (NotFoundError, StorageError):
            return None
        return hint if record.branch == branch else None

    def branch_leaf(self, branch: str) -> str:
        """UUID of the newest node of ``branch``."""
        start = self._claimed_uuid(keys.branch_claim(self.repo, branch))
        if start is None:
            raise NotFoundError(f"no branch named {branch!r} in repo {self.repo}")
        current = self._usable_hint(branch) or start
        while True:
            successor = self._claimed_uuid(keys.next_claim(self.repo, current, branch))
            if successor is None:
                return current
            current = successor

    def log(self, uuid: str) -> list[NodeRecord]:
        """Records from the root to ``uuid`` along first parents (oldest first)."""
        chain = [self.node(uuid)]
        while chain[-1].parents:
            chain.append(self.node(chain[-1].parents[0]))
        return chain[::-1]

    # -- updates ----------------------------------------------------------------------------

    def create_root(self) -> NodeRecord:
        """Create and attach the root node of a new repo (on branch ``master``)."""
        record = NodeRecord(uuid=new_uuid(), repo=self.repo, parents=(), branch=DEFAULT_BRANCH,
                            note="root", created=now())
        self.backend.put_if_absent(keys.node_record(self.repo, record.uuid), record.to_bytes())
        self.backend.put_if_absent(keys.branch_claim(self.repo, DEFAULT_BRANCH),
                                   record.uuid.encode())
        self._attached.add(record.uuid)
        return record

    def create_child(self, parent: NodeRecord, note: str, branch: str | None) -> NodeRecord:
        """Create and attach an open child of locked ``parent``.

        ``branch=None`` (or the parent's branch name) continues the parent's branch; any
        other name starts a new branch, which must not exist yet in this repo.

        Raises
        ------
        InvalidInputError
            ``parent`` is not locked, or the branch name is invalid.
        AlreadyExistsError
            The branch name is taken, or the parent already has a child continuing its
            branch (give a new branch name).
        """
        return self._create((parent,), note, branch, "creating a branch from it",
                            "create_branch(message, name=...)", None)

    def create_merge(self, parents: Sequence[NodeRecord], note: str, branch: str | None,
                     fill: Callable[[NodeRecord], None]) -> NodeRecord:
        """Create and attach an open node whose parents are all of ``parents`` (locked).

        It is claimed like a child of ``parents[0]`` (see :meth:`create_child` for
        ``branch``). ``fill(record)`` writes the node's content after its record is
        written and before it is claimed, so a crash leaves either no node in the DAG or
        a complete one; if ``fill`` raises, nothing is attached.

        Raises
        ------
        InvalidInputError, AlreadyExistsError, LockedError
            As :meth:`create_child`, for any parent.
        """
        return self._create(tuple(parents), note, branch, "merging it",
                            "merge(versions, message, name=...)", fill)

    def _create(self, parents: tuple[NodeRecord, ...], note: str, branch: str | None,
                action: str, how: str, fill: Callable[[NodeRecord], None] | None
                ) -> NodeRecord:
        for parent in parents:
            require_locked(parent, action)
        first = parents[0]
        name = first.branch if branch is None else validate_branch_name(branch)
        record = NodeRecord(uuid=new_uuid(), repo=self.repo,
                            parents=tuple(p.uuid for p in parents), branch=name, note=note,
                            created=now())
        claim = self._claim_key(record, first)  # computed first: a bad name writes nothing
        if fill is not None and self.backend.get(claim) is not None:
            # Refused before the (long) fill; the create-only claim below still decides.
            self._refuse_claim(first, name, how)
        record_key = keys.node_record(self.repo, record.uuid)
        self.backend.put_if_absent(record_key, record.to_bytes())
        if fill is not None:
            try:
                fill(record)
            except BaseException:
                self._discard(record, filled=True)
                raise
        try:
            claimed = self.backend.put_if_absent(claim, record.uuid.encode())
        except BaseException:
            self.backend.delete(record_key)
            raise
        if not claimed:
            self._discard(record, filled=fill is not None)
            self._refuse_claim(first, name, how)
        self._attached.add(record.uuid)
        self.backend.put(keys.branch_head(self.repo, name), record.uuid.encode())
        return record

    def _discard(self, record: NodeRecord, filled: bool) -> None:
        """Remove an unattached node: its record, then any content written for it."""
        self.backend.delete(keys.node_record(self.repo, record.uuid))
        if filled:
            prefix = keys.open_node_prefix(self.repo, record.uuid)
            for key in list(self.backend.list_prefix(prefix)):
                self.backend.delete(key)

    def _refuse_claim(self, parent: NodeRecord, name: str, how: str) -> None:
        if name == parent.branch:
            raise AlreadyExistsError(
                f"version node {parent.uuid} already has a child on branch {name!r}; "
                f"pass a new branch name to {how}"
            )
        raise AlreadyExistsError(
            f"a branch named {name!r} already exists in this repo; choose another name"
        )
