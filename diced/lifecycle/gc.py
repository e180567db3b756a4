"""Garbage collection: delete what no named repo reaches, safely while others write.

One run (docs/format.md, "Garbage collection", argues each step):

1. Take the store's gc lease (:mod:`diced.lifecycle.lease`; not for a dry run).
2. Note the time ``t0``; walk everything reachable (:mod:`diced.versioning.reachability`);
   then list every object with its size and modification time.
3. Settle the trash: a trash copy written before ``t0 − grace`` is deleted, or, if the
   walk reached its original key and that key is missing, written back first.
4. Every object below ``repos/`` that the walk did not reach and that was last written
   before ``t0 − grace``: a blob, page or manifest is *moved to the trash* (copied to
   ``trash/<key>``, then deleted, within ``grace / 2`` of the copy); anything else (node
   records, open nodes' entries and pointers, claims of deleted repos) is deleted.
   Keys diced does not write are left alone.
5. Remove temporary files that killed writers left (local stores), if older than
   ``grace``.
6. With ``grace == 0`` (a store nobody writes to), walk again and settle the fresh trash
   at once, so one run reclaims everything.

Readers that miss a blob, page or manifest look in the trash
(:func:`diced.versioning.trash.read_immutable`), so a writer that reused an object just
before it was moved loses nothing, and the next run puts the object back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from diced.backends import ObjectStore
from diced.backends._base import ObjectInfo
from diced.errors import InvalidInputError
from diced.lifecycle.lease import GcLease
from diced.lifecycle.parallel import run_all
from diced.lifecycle.usage import Usage
from diced.progress import StepProgress
from diced.versioning import keys
from diced.versioning.digest import digest
from diced.versioning.reachability import Walker

__all__ = ["DEFAULT_GRACE", "GcReport", "collect_garbage", "parse_duration"]

#: Default grace period: objects written in the last day are never deleted.
DEFAULT_GRACE = 24 * 3600.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"1w"`` or plain seconds → seconds.

    Raises
    ------
    InvalidInputError
        Not a non-negative number with an optional unit.
    """
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(f"invalid duration {text!r}: use a number of seconds or a "
                                "number with s, m, h, d or w, such as 1h or 7d")
    return seconds


@dataclass(frozen=True)
class GcReport:
    """What a collector run found and did (for a dry run: would do).

    ``deleted`` counts objects gone now (deleted objects, and trash past its grace
    period); ``trashed`` counts blobs, pages and manifests moved to the trash, which a
    run at least ``grace`` later deletes; ``kept_young`` the unreachable objects younger
    than the grace period; ``unknown`` objects below ``repos/`` diced does not write
    (left alone); ``skipped`` moves not finished because the collector was paused too
    long between copying and deleting; ``torn`` unreachable blobs, pages or manifests
    whose bytes do not match their name (a local writer killed while writing one in
    place, or one repairing it right now): left in place, as a writer of the same
    content repairs them and may be about to reference them.
    """

    dry_run: bool
    grace: float
    listed: Usage
    reachable: Usage
    kept_young: Usage
    unknown: Usage
    trashed: Usage
    deleted: Usage
    restored: Usage
    temporaries: Usage
    trash_left: Usage
    skipped: int = 0
    torn: int = 0

    @property
    def reclaimed(self) -> Usage:
        """Objects and bytes no longer stored after this run."""
        return self.deleted + self.temporaries


def _check_grace(grace: float) -> float:
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) \
            or not math.isfinite(grace) or grace < 0:
        raise InvalidInputError(f"grace must be a number of seconds >= 0, not {grace!r}")
    return float(grace)


def lease_seconds(grace: float) -> float:
    """How long a collector's lease lasts: as long as the grace period, 10 s to 10 min."""
    return min(600.0, max(10.0, grace))


@dataclass
class _Tally:
    """What the workers did (``list.append`` is atomic, so they append without a lock)."""

    trashed: list[ObjectInfo] = field(default_factory=list)
    deleted: list[ObjectInfo] = field(default_factory=list)
    restored: list[ObjectInfo] = field(default_factory=list)
    skipped: list[ObjectInfo] = field(default_factory=list)
    torn: list[ObjectInfo] = field(default_factory=list)


class _Run:
    """One collector run over ``backend`` (see the module docstring)."""

    def __init__(self, backend: ObjectStore, pool: ThreadPoolExecutor, grace: float,
                 dry_run: bool, lease: GcLease | None, bar: StepProgress) -> None:
        self.backend = backend
        self.pool = pool
        self.grace = grace
        self.dry_run = dry_run
        self.lease = lease
        self.bar = bar
        self.tally = _Tally()

    def _check(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def walk(self) -> tuple[float, set[str]]:
        """``(t0, keys reached)`` of a strict walk that started at ``t0``."""
        started = time.time()
        self.bar.start("gc: finding what is reachable")
        walker = Walker(self.backend, self.pool, strict=True)
        reached: set[str] = set()
        for ref in walker.store_refs(seen=set()):
            reached.add(ref.key)
            self.bar.advance()
            if len(reached) % 256 == 0:
                self._check()
        return started, reached

    def run(self) -> GcReport:
        started, reached = self.walk()
        self.bar.start("gc: listing the store")
        listed = list(self.backend.list_info(""))
        cutoff = started - self.grace
        present = {info.key for info in listed}
        trash = [i for i in listed if i.key.startswith(keys.TRASH_PREFIX)
                 and keys.is_immutable(keys.untrash(i.key))]
        settle = [i for i in trash if i.modified <= cutoff]
        reachable, young, unknown, to_trash, to_delete = [], [], [], [], []
        for info in listed:
            if not info.key.startswith(keys.repos_prefix()):
                continue
            if info.key in reached:
                reachable.append(info)
                continue
            kind = keys.kind_of(info.key)
            if kind is None or (kind == "immutable" and not keys.is_immutable(info.key)):
                unknown.append(info)
            elif info.modified > cutoff:
                young.append(info)
            elif kind == "immutable":
                to_trash.append(info)
            else:
                to_delete.append(info)
        left = [i for i in trash if i.modified > cutoff]
        if self.dry_run:
            self.tally.deleted += [i for i in settle if not self._restorable(i, reached,
                                                                              present)]
            self.tally.restored += [i for i in settle if self._restorable(i, reached, present)]
            self.tally.trashed += to_trash
            self.tally.deleted += to_delete
            temporaries = Usage()
        else:
            self.bar.start("gc: deleting", len(settle) + len(to_trash) + len(to_delete))
            self._each(settle, lambda info: self._settle(info, reached, present))
            self._each(to_trash, self._move_to_trash)
            self._each(to_delete, self._delete)
            files, size = self.backend.sweep_temporaries(self.grace)
            temporaries = Usage(files, size)
            left += self.tally.trashed
            if self.grace == 0 and left:
                self._settle_again()
                left = []
        return GcReport(
            dry_run=self.dry_run, grace=self.grace,
            listed=Usage.of(i for i in listed if i.key.startswith(keys.repos_prefix())),
            reachable=Usage.of(reachable), kept_young=Usage.of(young),
            unknown=Usage.of(unknown), trashed=Usage.of(self.tally.trashed),
            deleted=Usage.of(self.tally.deleted), restored=Usage.of(self.tally.restored),
            temporaries=temporaries, trash_left=Usage.of(left),
            skipped=len(self.tally.skipped), torn=len(self.tally.torn))

    def _settle_again(self) -> None:
        """Walk again and settle every trash copy now (grace 0: nobody else writes)."""
        _, reached = self.walk()
        trash = [i for i in self.backend.list_info(keys.TRASH_PREFIX)
                 if keys.is_immutable(keys.untrash(i.key))]
        present = {i.key for i in self.backend.list_info(keys.repos_prefix())}
        self.bar.start("gc: emptying the trash", len(trash))
        self._each(trash, lambda info: self._settle(info, reached, present))

    def _each(self, infos: Iterable[ObjectInfo], action: Callable[[ObjectInfo], None]) -> None:
        """Run ``action`` on every object in parallel; raise the first failure."""
        def step(info: ObjectInfo) -> None:
            self._check()
            action(info)
            self.bar.advance()

        run_all(self.pool, step, infos)

    @staticmethod
    def _restorable(info: ObjectInfo, reached: set[str], present: set[str]) -> bool:
        original = keys.untrash(info.key)
        return original in reached and original not in present

    def _settle(self, info: ObjectInfo, reached: set[str], present: set[str]) -> None:
        """Delete a trash copy past its grace period, writing it back first if needed."""
        if self._restorable(info, reached, present):
            data = self.backend.get(info.key)
            if data is None:
                return
            original = keys.untrash(info.key)
            if not _matches(original, data):
                return  # a damaged copy must not come back; fsck reports the object missing
            self.backend.put_if_absent(original, data)
            self.tally.restored.append(info)
        else:
            self.tally.deleted.append(info)
        self.backend.delete(info.key)

    def _move_to_trash(self, info: ObjectInfo) -> None:
        """Copy an unreachable immutable object to the trash, then delete it."""
        begun = time.monotonic()
        data = self.backend.get(info.key)
        if data is None:
            return
        if not _matches(info.key, data):
            self.tally.torn.append(info)
            return
        # put, not put_if_absent: the copy's modification time starts its grace period.
        self.backend.put(keys.trash(info.key), data)
        if self.grace > 0 and time.monotonic() - begun > self.grace / 2:
            # The argument in docs/format.md needs the delete within grace / 2 of the
            # copy; the object stays in place (the trash copy is a harmless duplicate).
            self.tally.skipped.append(info)
            return
        self._check()
        self.backend.delete(info.key)
        self.tally.trashed.append(info)

    def _delete(self, info: ObjectInfo) -> None:
        self.backend.delete(info.key)
        self.tally.deleted.append(info)


def _matches(key: str, data: bytes) -> bool:
    """Whether ``data`` has the digest the content-addressed ``key`` names."""
    return digest(data).hex() == keys.content_digest(key)


def collect_garbage(backend: ObjectStore, *, grace: float = DEFAULT_GRACE,
                    dry_run: bool = False, jobs: int = 16,
                    progress: bool | None = None) -> GcReport:
    """Delete every object of the store that no named repo reaches (see the module).

    Parameters
    ----------
    grace
        Seconds: nothing written more recently is deleted, and trash copies are deleted
        only this long after they were made. It must exceed twice the longest time a
        writer takes between finding an object in place and publishing what references it
        (one chunk write: milliseconds; a lock: the time it takes). 0 only for a store
        nobody writes to while it runs.
    dry_run
        Write nothing: report what a run would do.
    jobs
        Requests in flight at once.
    progress
        Show a progress bar (``None``: when stdout is a terminal).

    Raises
    ------
    StorageError
        A reachable object is missing or corrupt: what it references cannot be known,
        so nothing is deleted (run ``diced fsck``).
    ConflictError
        Another collector holds the store's gc lease.
    """
    grace = _check_grace(grace)
    if not isinstance(jobs, int) or jobs < 1:
        raise InvalidInputError(f"jobs must be a positive integer, not {jobs!r}")
    with ThreadPoolExecutor(jobs, thread_name_prefix="diced-gc") as pool, \
            StepProgress(progress) as bar:
        lease = None if dry_run else GcLease(backend, lease_seconds(grace)).acquire()
        try:
            return _Run(backend, pool, grace, dry_run, lease, bar).run()
        finally:
            if lease is not None:
                lease.release()
