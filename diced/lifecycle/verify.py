"""The integrity check (``diced fsck``): is everything reachable there and intact?

Every reachable object (see :mod:`diced.versioning.reachability`) is checked once: it
exists; records, claims, tags, entries and pointers parse as diced writes them; index
pages and manifests parse and match the digest that names them; every blob matches its
digest. Blobs are read in parallel. A damaged object is reported with what it affects:
for a blob, every version, array and chunk (or file) that holds it; for an index page,
the box of chunks below it; for a manifest or a node record, the version. Nothing is
written: the check only reads and lists.

An object found only in the garbage collector's trash is not damage (readers find it
there, and the next ``diced gc`` puts it back); it is listed separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from diced.backends import ObjectStore
from diced.errors import DicedException, InvalidInputError, NotFoundError
from diced.lifecycle.parallel import cancel_on_error
from diced.lifecycle.usage import Usage
from diced.progress import StepProgress
from diced.versioning import keys
from diced.versioning.digest import digest
from diced.versioning.graph import VersionGraph
from diced.versioning.node import NodeView
from diced.versioning.reachability import Kind, Problem, Ref, Walker, named_repos
from diced.versioning.records import NodeRecord

__all__ = ["Damage", "VerifyReport", "verify_store"]

#: Most places a damage report lists for one object (the count of the rest follows).
MAX_AFFECTED = 100


@dataclass(frozen=True)
class Damage:
    """One missing or corrupt object and what it affects.

    ``affected`` are the places that use the object (versions, arrays, chunks or boxes of
    chunks, files), at most :data:`MAX_AFFECTED`; ``more`` counts the others.
    """

    key: str
    kind: str
    detail: str
    affected: tuple[Ref, ...]
    more: int = 0

    def lines(self, repo_names: dict[str, str]) -> list[str]:
        """The report as text: the object, then one indented line per affected place."""
        head = f"{self.kind} {self.key}: {self.detail}"
        places = []
        for ref in self.affected:
            repo = repo_names.get(ref.repo or "", ref.repo)
            places.append(f"  affects repo {repo!r}, {ref.where()}" if repo else
                          f"  affects {ref.where()}")
        if self.more:
            places.append(f"  ... and {self.more} more places")
        return [head, *places]


@dataclass(frozen=True)
class VerifyReport:
    """What the check read and what it found damaged.

    ``checked`` counts the objects checked and the bytes of the blobs read; ``in_trash``
    lists reachable objects held only in the garbage collector's trash.
    """

    checked: Usage
    damage: tuple[Damage, ...]
    in_trash: tuple[str, ...]
    repos: dict[str, str]

    @property
    def ok(self) -> bool:
        """Whether nothing is missing or damaged."""
        return not self.damage


class _Check:
    """One run of the check; see :func:`verify_store`."""

    def __init__(self, backend: ObjectStore, pool: ThreadPoolExecutor, bar: StepProgress
                 ) -> None:
        self.backend = backend
        self.pool = pool
        self.bar = bar
        self.walker = Walker(backend, pool, strict=False, check_roots=True)
        self.problems: list[Problem] = []
        self.in_trash: list[str] = []
        self.read_bytes = 0

    def blob(self, ref: Ref) -> int:
        """Read one blob and compare it with its digest; return the bytes read."""
        data = self.backend.get(ref.key)
        if data is None:
            data = self.backend.get(keys.trash(ref.key))
            if data is not None:
                self.in_trash.append(ref.key)
        self.bar.advance()
        if data is None:
            self.problems.append(Problem(ref, "missing"))
            return 0
        if digest(data) != ref.digest:
            self.problems.append(Problem(ref, "corrupt (its bytes do not match their digest)"))
        return len(data)

    def run(self, refs: Iterable[Ref]) -> int:
        """Check every ref; return how many objects were checked."""
        self.bar.start("fsck: checking objects", 0)
        count = 0
        futures: list[Future[int]] = []
        content: list[Ref] = []
        try:
            for ref in refs:
                count += 1
                self.bar.grow(1)
                if ref.kind == Kind.BLOB:
                    futures.append(self.pool.submit(self.blob, ref))
                else:
                    if ref.kind in (Kind.PAGE, Kind.MANIFEST):
                        content.append(ref)
                    self.bar.advance()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        self.read_bytes = sum(cancel_on_error(futures))
        self._trash_only(content)
        self.problems += self.walker.problems
        return count

    def _trash_only(self, refs: list[Ref]) -> None:
        """Note reachable pages and manifests that are only in the trash."""
        prefixes = {keys.repo_prefix(ref.repo) for ref in refs if ref.repo is not None}
        present: set[str] = set()
        for prefix in prefixes:
            present.update(self.backend.list_prefix(prefix))
        damaged = {p.ref.key for p in self.walker.problems}
        self.in_trash += [r.key for r in refs if r.key not in present and r.key not in damaged]


def _affected(backend: ObjectStore, pool: ThreadPoolExecutor, problems: list[Problem]
              ) -> list[Damage]:
    """Group problems by object, adding every place that uses a damaged shared object."""
    first: dict[str, Problem] = {}
    for problem in problems:
        first.setdefault(problem.ref.key, problem)
    places: dict[str, list[Ref]] = {key: [] for key in first}
    counts: dict[str, int] = dict.fromkeys(first, 0)
    shared = {p.ref.key for p in first.values() if p.ref.kind in Kind.CONTENT}
    repos = {p.ref.repo for p in first.values() if p.ref.key in shared and p.ref.repo}
    # A second, per-version walk finds every version that uses a damaged blob, page or
    # manifest (the first walk saw each content-addressed object once).
    walker = Walker(backend, pool, strict=False)
    for repo in repos:
        assert repo is not None
        for record in walker.nodes(repo):
            for ref in _places(walker, record):
                if ref.key in shared:
                    counts[ref.key] += 1
                    if len(places[ref.key]) < MAX_AFFECTED:
                        places[ref.key].append(ref)
    damage = []
    for key, problem in first.items():
        found = places[key] or [problem.ref]
        damage.append(Damage(key, problem.ref.kind, problem.detail, tuple(found),
                             max(0, counts[key] - len(found))))
    return sorted(damage, key=lambda d: d.key)


def _places(walker: Walker, record: NodeRecord) -> Iterator[Ref]:
    """Every object version ``record`` reads, once per place (chunk, file) it reads it.

    An open version also reads its parent's trees and files where it changed nothing.
    """
    yield from walker.node_refs(record)
    if record.locked or not record.parents:
        return
    try:
        view = NodeView.open(walker.backend, record, walker.cache,
                             VersionGraph(walker.backend, record.repo).node)
        arrays = view.arrays()
        files = view.files(include_hidden=True)
    except DicedException:
        return  # the damage that prevents it is reported by itself
    where = Ref("", Kind.PAGE, repo=record.repo, node=record.uuid)
    for name, info in arrays.items():
        if info.base is None or info.base.root is None:
            continue
        try:
            written = view.pointers(info)
        except DicedException:
            written = {}
        for ref in walker.tree_refs(replace(where, array=name), info.ndim, info.base.root,
                                    info.base.height, None):
            if ref.coords is None or ref.coords not in written:
                yield ref
    for name, file_digest in files.items():
        if view.base.files.get(name) == file_digest.hex():
            yield Ref(keys.blob(record.repo, file_digest.hex()), Kind.BLOB, repo=record.repo,
                      node=record.uuid, file=name, digest=file_digest)


def verify_store(backend: ObjectStore, repo: str | None = None, version: str | None = None,
                 *, jobs: int = 16, progress: bool | None = None) -> VerifyReport:
    """Check every object the store (or repo ``repo``, or one version of it) reaches.

    ``version`` (a UUID, unique prefix, ``uuid:branch`` or ``:branch``) needs ``repo``
    unless it is a UUID or prefix; only what that version reads is checked (its record,
    manifest, trees and blobs; for an open version also its parent's). Reads only.

    Raises
    ------
    NotFoundError
        No such repo or version.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise InvalidInputError(f"jobs must be a positive integer, not {jobs!r}")
    names = {uuid: name for name, uuid in named_repos(backend, lambda problem: None)}
    with ThreadPoolExecutor(jobs, thread_name_prefix="diced-fsck") as pool, \
            StepProgress(progress) as bar:
        check = _Check(backend, pool, bar)
        seen: set[str] = set()
        refs: Iterable[Ref]
        if version is not None:
            uuid, node = _find_version(backend, names, repo, version)
            refs = _version_refs(check.walker, uuid, node, seen)
        elif repo is not None:
            refs = check.walker.repo_refs(_find_repo(names, repo), seen)
        else:
            refs = check.walker.store_refs(seen=seen)
        count = check.run(refs)
        bar.start("fsck: finding what the damage affects")
        damage = _affected(backend, pool, check.problems)
    return VerifyReport(Usage(count, check.read_bytes), tuple(damage),
                        tuple(sorted(check.in_trash)), names)


def _version_refs(walker: Walker, repo: str, node: str, seen: set[str]) -> Iterable[Ref]:
    """What one version reads: its record and objects, and for an open one its parent's."""
    graph = VersionGraph(walker.backend, repo)
    record = graph.node(node)
    yield Ref(keys.node_record(repo, node), Kind.NODE, repo=repo, node=node)
    yield from walker.node_refs(record, seen)
    if not record.locked and record.parents:
        parent = graph.node(record.parents[0])
        yield Ref(keys.node_record(repo, parent.uuid), Kind.NODE, repo=repo, node=parent.uuid)
        yield from walker.node_refs(parent, seen)


def _find_repo(names: dict[str, str], repo: str) -> str:
    """The UUID of the repo named ``repo`` (found without writing anything)."""
    for uuid, name in names.items():
        if name == repo:
            return uuid
    raise NotFoundError(f"no repo named {repo!r}; list_repos() shows the repos")


def _find_version(backend: ObjectStore, names: dict[str, str], repo: str | None,
                  version: str) -> tuple[str, str]:
    """``(repo UUID, node UUID)`` of ``version`` (in ``repo``, or in any repo)."""
    if repo is not None:
        uuid = _find_repo(names, repo)
        return uuid, VersionGraph(backend, uuid).resolve(version)
    hits = []
    for uuid in names:
        try:
            hits.append((uuid, VersionGraph(backend, uuid).resolve(version)))
        except NotFoundError:
            continue
    if len(hits) != 1:
        raise (NotFoundError(f"no version node {version!r} in any repo of this store")
               if not hits else InvalidInputError(
                   f"version {version!r} matches nodes in several repos; name the repo"))
    return hits[0]
