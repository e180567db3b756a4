"""Removing versions from a repo's DAG: a whole branch, or one open leaf.

A node leaves the DAG when the claim (or graft) that attaches it is deleted: that one
delete is the commit point. Its record and data stay until the garbage collector finds
them unreachable and older than its grace period (docs/format.md). Before detaching a
node, an open one is sealed (so no write starts there any more, and writes in flight
report a conflict, as when racing a lock), and a locked one has its record rewritten
unchanged, which restarts the grace period of its record: a ``create_branch`` from it
that read it just before it was detached has that long to attach its child, which then
keeps it (the collector keeps the ancestry of every attached node).

Nothing is detached that anything else depends on: a node with a child outside the
deletion, a node a tag names, or the repo's root.
"""

from __future__ import annotations

from dataclasses import dataclass

from diced.errors import ConflictError, InvalidInputError, NotFoundError
from diced.versioning import keys
from diced.versioning.graph import DagNode, VersionGraph
from diced.versioning.reachability import tag_node
from diced.versioning.records import NodeRecord, parse_uuid

__all__ = ["BranchDeletion", "delete_branch", "delete_version", "tagged_nodes"]


@dataclass(frozen=True)
class BranchDeletion:
    """What :func:`delete_branch` removed, and which nodes of the branch it kept, and why.

    ``deleted`` lists UUIDs, newest first; ``kept`` pairs each kept node's UUID with the
    reason.
    """

    branch: str
    deleted: tuple[str, ...]
    kept: tuple[tuple[str, str], ...]


def tagged_nodes(graph: VersionGraph) -> dict[str, list[str]]:
    """Node UUID → names of the tags naming it (tags hold JSON with the node's ``uuid``)."""
    found: dict[str, list[str]] = {}
    prefix = keys.tags_prefix(graph.repo)
    for key in graph.backend.list_prefix(prefix):
        data = graph.backend.get(key)
        if data is None:
            continue
        found.setdefault(tag_node(data, key), []).append(keys.decode_name(key[len(prefix):]))
    return found


def _chain(graph: VersionGraph, branch: str) -> list[str]:
    """UUIDs of the nodes of ``branch``, oldest first (following its claims)."""
    data = graph.backend.get(keys.branch_claim(graph.repo, branch))
    if data is None:
        raise NotFoundError(f"no branch named {branch!r} in repo {graph.repo}")
    chain = [parse_uuid(data, "branch claim", keys.branch_claim(graph.repo, branch))]
    while True:
        key = keys.next_claim(graph.repo, chain[-1], branch)
        successor = graph.backend.get(key)
        if successor is None:
            return chain
        chain.append(parse_uuid(successor, "branch claim", key))


def _blockers(uuid: str, dag: dict[str, DagNode], doomed: set[str],
              tags: dict[str, list[str]], root: str) -> list[str]:
    """Why node ``uuid`` cannot be detached (nothing: it can)."""
    reasons = []
    if uuid == root:
        reasons.append("it is the repo's root (delete the repo instead)")
    reasons += [f"tag {name!r} names it" for name in tags.get(uuid, [])]
    for child in dag[uuid].children:
        if child not in doomed:
            node = dag[child].record
            reasons.append(f"version {child} (branch {node.branch!r}) is its child")
    return reasons


def _detach(graph: VersionGraph, record: NodeRecord, dag: dict[str, DagNode]) -> None:
    """Stop writes at ``record`` (or restart its record's grace period), then detach it."""
    key = keys.node_record(graph.repo, record.uuid)
    current = graph.backend.get_versioned(key)
    if current is None:
        raise NotFoundError(f"version node {record.uuid} no longer exists")
    found = NodeRecord.from_bytes(current.data, key)
    if found.state == "open":
        if not graph.backend.put_if_match(key, found.sealed().to_bytes(), current.token):
            raise ConflictError(f"version node {record.uuid} changed while it was being "
                                "deleted (another process locked it?); try again")
    elif not graph.backend.compare_and_swap(key, current.data, current.data):
        raise ConflictError(f"version node {record.uuid} changed while it was being deleted; "
                            "try again")
    first = dag[record.parents[0]].record if record.parents and record.parents[0] in dag \
        else None
    claim = graph.claim_key(record, first)
    if graph.backend.get(claim) == record.uuid.encode():
        graph.backend.delete(claim)
    graph.backend.delete(keys.graft(graph.repo, record.uuid))


def _reattach_if_needed(graph: VersionGraph, deleted: list[str], dag: dict[str, DagNode]
                        ) -> None:
    """Put back any detached node that gained a child meanwhile (a racing create_branch)."""
    fresh = VersionGraph(graph.backend, graph.repo).nodes()
    orphans = sorted({p for node in fresh.values() for p in node.record.parents
                      if p in deleted})
    if not orphans:
        return
    for uuid in orphans:
        parent = dag[uuid].record
        first = dag[parent.parents[0]].record if parent.parents else None
        if not graph.backend.put_if_absent(graph.claim_key(parent, first), uuid.encode()):
            graph.backend.put_if_absent(keys.graft(graph.repo, uuid), uuid.encode())
    raise ConflictError(
        f"version(s) {', '.join(orphans)} gained a child while being deleted (another "
        "process created a branch from them); they were put back. Delete again once "
        "nobody branches from them")


def delete_branch(graph: VersionGraph, branch: str) -> BranchDeletion:
    """Detach the nodes of ``branch`` that nothing else depends on, newest first.

    The nodes kept are the oldest ones of the branch up to the newest node that has a
    child on another branch, a tag, or is the repo's root; every one of them is reported
    with the reason. The branch's hint is moved to its new leaf (or removed).

    Raises
    ------
    NotFoundError
        No such branch.
    InvalidInputError
        Nothing of the branch can be deleted (the message says why).
    ConflictError
        A node being deleted gained a child meanwhile (it is put back).
    """
    chain = _chain(graph, branch)
    dag = graph.nodes()
    tags = tagged_nodes(graph)
    root = next(u for u, n in dag.items() if not n.record.parents) if dag else ""
    doomed: set[str] = set()
    kept: list[tuple[str, str]] = []
    for uuid in reversed(chain):
        reasons = _blockers(uuid, dag, doomed, tags, root) if uuid in dag else []
        if reasons:
            kept.append((uuid, "; ".join(reasons)))
            break
        doomed.add(uuid)
    older = chain[:len(chain) - len(doomed) - len(kept)]
    kept += [(uuid, f"an older version of the branch than {kept[0][0]}") for uuid in
             reversed(older)] if kept else []
    if not doomed:
        raise InvalidInputError(f"nothing of branch {branch!r} can be deleted: version "
                                f"{kept[0][0]} is kept because {kept[0][1]}")
    deleted = [u for u in reversed(chain) if u in doomed]
    for uuid in deleted:
        _detach(graph, dag[uuid].record, dag)
    _reattach_if_needed(graph, deleted, dag)
    hint = keys.branch_head(graph.repo, branch)
    if kept:
        graph.backend.put(hint, kept[0][0].encode())
    else:
        graph.backend.delete(hint)
    return BranchDeletion(branch, tuple(deleted), tuple(kept))


def delete_version(graph: VersionGraph, uuid: str) -> None:
    """Detach the open (or sealing) leaf node ``uuid``: abandon work in progress.

    Raises
    ------
    NotFoundError
        No such node.
    InvalidInputError
        The node is locked (use ``delete_branch``), is the repo's root (delete the repo),
        or a tag names it.
    ConflictError
        Another process locked it meanwhile.
    """
    record = graph.node(uuid)
    if record.locked:
        raise InvalidInputError(f"version {uuid} is locked: locked versions are deleted with "
                                "their branch (delete_branch), when nothing depends on them")
    if not record.parents:
        raise InvalidInputError(f"version {uuid} is the repo's root; delete the repo instead")
    tags = tagged_nodes(graph).get(uuid)
    if tags:
        raise InvalidInputError(f"version {uuid} is named by tag(s) {', '.join(tags)}; "
                                "delete the tags first")
    dag = graph.nodes()
    _detach(graph, record, dag)
    hint = keys.branch_head(graph.repo, record.branch)
    parent = dag[record.parents[0]].record
    if graph.backend.get(hint) == uuid.encode():
        if parent.branch == record.branch:
            graph.backend.put(hint, parent.uuid.encode())
        else:
            graph.backend.delete(hint)
