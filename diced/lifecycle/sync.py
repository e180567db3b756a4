"""Copying repos and versions between stores (``diced clone``, ``sync``, ``push``, ``pull``).

Blobs, pages and manifests are named by their content, so what the destination lacks is
a set difference of keys: only those objects are copied (each checked against its digest
on the way), in parallel. Versions keep their UUIDs, branches and tags. Only *locked*
versions are copied: an open one is work in progress that may still change (lock it to
copy it); every ancestor of a locked version is locked.

The destination never holds a node that points at a missing object, because everything
is written bottom-up and create-only, the way diced writes:

1. every missing blob, page and manifest of the chosen versions;
2. then, oldest first, each node record, then the claim that attaches it (for a new
   repo, after its root: ``repo.json``, then the name, the commit point of the repo);
3. then tags and branch hints.

A copy that is interrupted leaves objects nothing references yet (the garbage collector
removes them if nobody finishes the copy), and running it again finishes it: it is
idempotent. A node already at the destination is left alone (its record must be equal;
a different one is a conflict, reported, never overwritten). When the destination's
history diverged (the claim slot of a copied node names another node there: both stores
continued a branch from the same version), the node is attached by a *graft*: it is
added to the DAG, reachable by its UUID, while the destination's branch keeps its own
chain.

The destination is listed once per repo to learn what it has. Step 2 starts only from a
listing younger than :data:`LISTING_MAX_AGE` (else the destination is listed again and
anything missing is copied again): a garbage collector running on the destination must
not delete an object between the listing that found it and the claim that makes it
reachable (docs/format.md, "Garbage collection").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from diced.backends import ObjectStore
from diced.errors import InvalidInputError, NotFoundError, StorageError
from diced.lifecycle.parallel import run_all
from diced.lifecycle.usage import Usage
from diced.progress import StepProgress
from diced.versioning import keys
from diced.versioning.digest import digest
from diced.versioning.graph import DagNode, VersionGraph
from diced.versioning.reachability import Kind, Walker, named_repos, tag_node
from diced.versioning.records import NodeRecord
from diced.versioning.trash import read_immutable

__all__ = ["LISTING_MAX_AGE", "RepoCopy", "SyncReport", "copy_versions"]

#: Seconds a listing of the destination is trusted before nodes are published from it.
LISTING_MAX_AGE = 600.0


@dataclass(frozen=True)
class RepoCopy:
    """What happened to one repo.

    ``copied`` lists the versions added to the destination (oldest first); ``present``
    counts those it already had; ``grafted`` the added ones whose branch there had
    diverged; ``skipped`` pairs versions not copied with the reason; ``conflicts`` says
    what the destination holds differently (never overwritten).
    """

    name: str
    uuid: str
    copied: tuple[str, ...] = ()
    present: int = 0
    grafted: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncReport:
    """A copy: per repo, and the objects written to (and already in) the destination."""

    repos: tuple[RepoCopy, ...]
    written: Usage
    already_there: Usage

    @property
    def ok(self) -> bool:
        """Whether nothing conflicted with what the destination holds."""
        return not any(r.conflicts for r in self.repos)


@dataclass
class _Plan:
    """One repo's copy: its versions in order and the content objects they need."""

    name: str
    uuid: str
    nodes: list[NodeRecord]
    dag: dict[str, DagNode]
    #: Content objects to copy, with their size at the source (``None``: not listed there,
    #: e.g. held in the source's gc trash).
    needed: dict[str, int | None] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _ordered(records: Iterable[NodeRecord]) -> list[NodeRecord]:
    """``records`` with every node after its parents (oldest first among equals)."""
    pending = sorted(records, key=lambda r: r.created)
    chosen = {r.uuid for r in pending}
    done: set[str] = set()
    order: list[NodeRecord] = []
    while pending:
        ready = [r for r in pending if all(p in done or p not in chosen for p in r.parents)]
        if not ready:
            raise StorageError("the version graph has a cycle: the store is damaged")
        for record in ready:
            order.append(record)
            done.add(record.uuid)
        pending = [r for r in pending if r.uuid not in done]
    return order


class _Copy:
    """One copy from ``src`` to ``dst``; see :func:`copy_versions`."""

    def __init__(self, src: ObjectStore, dst: ObjectStore, pool: ThreadPoolExecutor,
                 bar: StepProgress) -> None:
        self.src = src
        self.dst = dst
        self.pool = pool
        self.bar = bar
        self.written: list[int] = []
        self.there: list[int] = []
        #: Keys of the repo being copied that the destination's last listing showed.
        self.have: set[str] = set()

    # -- planning ---------------------------------------------------------------------------

    def plan(self, name: str, repo: str, versions: Sequence[str] | None) -> _Plan:
        graph = VersionGraph(self.src, repo)
        dag = graph.nodes()
        skipped: list[tuple[str, str]] = []
        if versions is None:
            wanted = {u for u, n in dag.items() if n.record.locked}
            skipped = [(u, f"{n.record.state}: lock it to copy it") for u, n in dag.items()
                       if not n.record.locked]
        else:
            wanted = set()
            for version in versions:
                uuid = graph.resolve(version)
                if not dag[uuid].record.locked:
                    raise InvalidInputError(
                        f"version {uuid} of repo {name!r} is {dag[uuid].record.state}: only "
                        "locked versions are copied; lock it first (lock_node)")
                wanted.add(uuid)
        stack = list(wanted)
        while stack:
            for parent in dag[stack.pop()].record.parents:
                if parent not in wanted:
                    wanted.add(parent)
                    stack.append(parent)
        nodes = _ordered(dag[u].record for u in wanted)
        if nodes and nodes[0].parents:
            raise StorageError(f"repo {name!r} has no root among its versions: the store is "
                               "damaged")
        plan = _Plan(name, repo, nodes, dag, skipped=skipped)
        sizes = {i.key: i.size for i in self.src.list_info(keys.repo_prefix(repo))}
        walker = Walker(self.src, self.pool, strict=True)
        seen: set[str] = set()
        for record in nodes:
            for reached in walker.node_refs(record, seen):
                if reached.kind in Kind.CONTENT:
                    plan.needed[reached.key] = sizes.get(reached.key)
        return plan

    # -- content objects --------------------------------------------------------------------

    def _copy_object(self, item: tuple[str, bool]) -> None:
        """Copy one content-addressed object; ``item``: its key, and whether the
        destination holds a torn copy of it."""
        key, torn = item
        data = read_immutable(self.src, key)
        if data is None or digest(data).hex() != keys.content_digest(key):
            raise StorageError(f"{key!r} is {'missing' if data is None else 'corrupt'} in the "
                               "source store; run diced fsck on it, restore the object, and "
                               "copy again")
        if torn:
            self.dst.put_immutable(key, data)  # replaces a torn local copy whole
            self.written.append(len(data))
        elif self.dst.put_if_absent(key, data):
            self.written.append(len(data))
        else:
            self.there.append(len(data))
        self.bar.advance(len(data))

    def copy_missing(self, plan: _Plan) -> float:
        """Copy what the destination lacks until a listing taken at most
        :data:`LISTING_MAX_AGE` ago shows everything there; return that listing's time."""
        first = True
        while True:
            listed_at = time.monotonic()
            sizes = {i.key: i.size for i in self.dst.list_info(keys.repo_prefix(plan.uuid))}
            self.have = set(sizes)
            # A copy of another size is torn (a local writer killed while writing it in
            # place): written again, whole.
            missing = [k for k, size in plan.needed.items()
                       if k not in sizes or size not in (None, sizes[k])]
            if first:
                self.there += [sizes[k] for k in plan.needed if k in sizes and k not in missing]
                first = False
            if not missing:
                return listed_at
            self.bar.start(f"copying {plan.name}", sum(plan.needed[k] or 0 for k in missing),
                           bytes_=True)
            run_all(self.pool, self._copy_object, [(k, k in sizes) for k in missing])
            if time.monotonic() - listed_at <= LISTING_MAX_AGE:
                return listed_at

    # -- records, claims, names -------------------------------------------------------------

    def _create(self, key: str, data: bytes) -> bytes | None:
        """Write ``data`` at ``key`` unless something is there; return what is there then
        (``None`` when this call wrote it). A key the last listing showed is only read."""
        found = self.dst.get(key) if key in self.have else None
        if found is None:
            if self.dst.put_if_absent(key, data):
                self.written.append(len(data))
                return None
            found = self.dst.get(key)
        if found == data:
            self.there.append(len(data))
        return found

    def publish(self, plan: _Plan, listed_at: float) -> RepoCopy:
        src_graph = VersionGraph(self.src, plan.uuid)
        copied: list[str] = []
        grafted: list[str] = []
        conflicts: list[str] = []
        blocked: set[str] = set()
        present = 0
        new_repo = self.dst.get(keys.repo_name(plan.name)) is None
        self.bar.start(f"publishing {plan.name}", len(plan.nodes))
        for record in plan.nodes:
            self.bar.advance()
            if any(p in blocked for p in record.parents):
                blocked.add(record.uuid)
                plan.skipped.append((record.uuid, "a parent was not copied"))
                continue
            if time.monotonic() - listed_at > LISTING_MAX_AGE:
                listed_at = self.copy_missing(plan)
            key = keys.node_record(plan.uuid, record.uuid)
            data = self.src.get(key)
            assert data is not None
            found = self._create(key, data)
            if found is not None and found != data:
                blocked.add(record.uuid)
                conflicts.append(f"version {record.uuid} exists at the destination with a "
                                 "different record; it (and what descends from it) was not "
                                 "copied")
                continue
            parent = plan.dag[record.parents[0]].record if record.parents else None
            claim = src_graph.claim_key(record, parent)
            held = self._create(claim, record.uuid.encode())
            if held is not None and held != record.uuid.encode():
                graft = self._create(keys.graft(plan.uuid, record.uuid), record.uuid.encode())
                if graft is None:
                    grafted.append(record.uuid)
            if found is None or held is None:
                copied.append(record.uuid)
            else:
                present += 1
            if not record.parents and new_repo:
                conflicts += self._name_repo(plan)
        conflicts += self._tags(plan, blocked)
        self._hints(plan)
        return RepoCopy(plan.name, plan.uuid, tuple(copied), present, tuple(grafted),
                        tuple(plan.skipped), tuple(conflicts))

    def _name_repo(self, plan: _Plan) -> list[str]:
        """Write ``repo.json``, then claim the repo's name (the commit point of the repo)."""
        data = self.src.get(keys.repo_record(plan.uuid))
        if data is None:
            raise StorageError(f"repo {plan.name!r} has no repo.json in the source store")
        self._create(keys.repo_record(plan.uuid), data)
        held = self._create(keys.repo_name(plan.name), plan.uuid.encode())
        if held is not None and held != plan.uuid.encode():
            return [f"the name {plan.name!r} was taken at the destination by another repo "
                    "meanwhile; its versions were copied but are not named there"]
        return []

    def _tags(self, plan: _Plan, blocked: set[str]) -> list[str]:
        """Copy the tags of copied versions; one naming another version there conflicts."""
        copied = {r.uuid for r in plan.nodes} - blocked
        conflicts = []
        prefix = keys.tags_prefix(plan.uuid)
        for key in self.src.list_prefix(prefix):
            data = self.src.get(key)
            if data is None:
                continue
            if tag_node(data, key) not in copied:
                continue
            found = self._create(key, data)
            if found is not None and found != data:
                conflicts.append(f"tag {keys.decode_name(key[len(prefix):])!r} names another "
                                 "version at the destination; not overwritten")
        return conflicts

    def _hints(self, plan: _Plan) -> None:
        """Point each copied branch's hint at its leaf at the destination."""
        graph = VersionGraph(self.dst, plan.uuid)
        for branch in sorted({r.branch for r in plan.nodes}):
            try:
                leaf = graph.branch_leaf(branch)
            except NotFoundError:
                continue
            hint = keys.branch_head(plan.uuid, branch)
            if self.dst.get(hint) != leaf.encode():
                self.dst.put(hint, leaf.encode())
                self.written.append(len(leaf))


def _selection(src: ObjectStore, repos: Sequence[str] | None, versions: Sequence[str] | None
               ) -> list[tuple[str, str, list[str] | None]]:
    """``(name, uuid, versions or None)`` for each repo to copy."""
    named = named_repos(src)
    if repos is not None:
        unknown = sorted(set(repos) - {n for n, _ in named})
        if unknown:
            raise NotFoundError(f"no repo named {unknown[0]!r} in the source store")
        named = [(n, u) for n, u in named if n in set(repos)]
    if versions is None:
        return [(n, u, None) for n, u in named]
    chosen: dict[str, list[str]] = {}
    for ref in versions:
        hits = []
        for name, uuid in named:
            try:
                VersionGraph(src, uuid).resolve(ref)
            except NotFoundError:
                continue
            hits.append(name)
        if not hits:
            raise NotFoundError(f"no version {ref!r} in the source store's repos")
        if len(hits) > 1:
            raise InvalidInputError(f"version {ref!r} is in several repos ({', '.join(hits)}); "
                                    "name the repo")
        chosen.setdefault(hits[0], []).append(ref)
    return [(n, u, chosen[n]) for n, u in named if n in chosen]


def copy_versions(src: ObjectStore, dst: ObjectStore, *, repos: Sequence[str] | None = None,
                  versions: Sequence[str] | None = None, jobs: int = 16,
                  progress: bool | None = None) -> SyncReport:
    """Copy repos (all, or those named in ``repos``), or only ``versions`` and their
    ancestry, from ``src`` to ``dst`` (a diced store), copying only what it lacks.

    ``versions`` are UUIDs, unique prefixes, ``uuid:branch`` or ``:branch`` (the latter
    two need ``repos`` to name one repo). ``jobs`` bounds the requests in flight.

    Raises
    ------
    NotFoundError
        A named repo or version does not exist in ``src``.
    InvalidInputError
        A named version is open (only locked versions are copied).
    StorageError
        An object of ``src`` is missing or corrupt (nothing that needs it is published).
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise InvalidInputError(f"jobs must be a positive integer, not {jobs!r}")
    reports = []
    with ThreadPoolExecutor(jobs, thread_name_prefix="diced-copy") as pool, \
            StepProgress(progress) as bar:
        copy = _Copy(src, dst, pool, bar)
        for name, uuid, wanted in _selection(src, repos, versions):
            held = dst.get(keys.repo_name(name))
            if held is not None and held != uuid.encode():
                reports.append(RepoCopy(name, uuid, conflicts=(
                    f"the destination has another repo named {name!r}; nothing of it was "
                    "copied (delete or rename one of them)",)))
                continue
            bar.start(f"planning {name}")
            plan = copy.plan(name, uuid, wanted)
            if not plan.nodes:
                # Nothing is locked yet: the repo has nothing to copy (not a conflict).
                reports.append(RepoCopy(name, uuid, skipped=tuple(plan.skipped)))
                continue
            listed_at = copy.copy_missing(plan)
            reports.append(copy.publish(plan, listed_at))
    return SyncReport(tuple(reports), Usage(len(copy.written), sum(copy.written)),
                      Usage(len(copy.there), sum(copy.there)))
