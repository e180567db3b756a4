"""``diced du``, ``fsck``, ``gc``, ``clone``, ``sync``, ``push``, ``pull``, ``delete-branch``
and ``delete-version``: the command-line face of :mod:`diced.lifecycle`.

The commands are added to the ``diced`` group by :func:`add_lifecycle_commands`, which
takes the group's own helpers (opening a store, a repo at a version, the ``--version``
option, the table console), so they behave exactly like the others. Commands that find a
problem (damage, a conflict) print it and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from diced.errors import AlreadyExistsError
from diced.lifecycle import DEFAULT_GRACE, GcReport, SyncReport, Usage, VersionUsage
from diced.lifecycle.gc import parse_duration
from diced.repo import DicedRepo
from diced.store import DicedStore

__all__ = ["add_lifecycle_commands", "human_bytes"]

_INTERRUPTED = ("interrupted: the store is valid (every step is atomic); run the same "
                "command again to finish")


def human_bytes(n: int) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as storage is billed)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _count(n: int, noun: str) -> str:
    """``1 version``, ``2 versions``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _usage(usage: Usage, exact: bool) -> str:
    return str(usage.bytes) if exact else human_bytes(usage.bytes)


@contextmanager
def _interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        click.echo(_INTERRUPTED, err=True)
        raise click.exceptions.Exit(130) from None


def _version_rows(table: Table, version: VersionUsage, exact: bool) -> None:
    table.add_row(version.uuid, version.branch, version.state, "(all)", "",
                  _usage(version.stored, exact), _usage(version.unique, exact),
                  _usage(version.shared, exact))
    for array in version.arrays:
        table.add_row("", "", "", array.name, str(array.chunks), _usage(array.stored, exact),
                      _usage(array.unique, exact), _usage(array.shared, exact))
    if version.files.objects:
        table.add_row("", "", "", f"({version.files.objects} files)", "",
                      _usage(version.files, exact), "", "")


def _gc_lines(report: GcReport) -> list[str]:
    verb = "would" if report.dry_run else "did"
    lines = [
        f"reachable: {report.reachable.objects} objects, {human_bytes(report.reachable.bytes)}",
        f"unreachable but younger than the grace period (kept): {report.kept_young.objects} "
        f"objects, {human_bytes(report.kept_young.bytes)}",
        f"moved to the trash ({verb}; deleted by a gc at least the grace period later): "
        f"{report.trashed.objects} objects, {human_bytes(report.trashed.bytes)}",
        f"deleted ({verb}): {report.deleted.objects} objects, "
        f"{human_bytes(report.deleted.bytes)}",
    ]
    if report.restored.objects:
        lines.append(f"restored from the trash ({verb}): {report.restored.objects} objects")
    if report.temporaries.objects:
        lines.append(f"temporary files of killed writers deleted: "
                     f"{report.temporaries.objects}, {human_bytes(report.temporaries.bytes)}")
    if report.trash_left.objects:
        lines.append(f"in the trash, deleted by a later gc: {report.trash_left.objects} "
                     f"objects, {human_bytes(report.trash_left.bytes)}")
    if report.unknown.objects:
        lines.append(f"objects diced does not write, left alone: {report.unknown.objects}")
    if report.torn:
        lines.append(f"torn copies left in place (a writer killed mid-write; the next write "
                     f"of the same data repairs them): {report.torn}")
    if report.skipped:
        lines.append(f"moves not finished (the collector was paused too long; run gc "
                     f"again): {report.skipped}")
    if not report.dry_run:
        lines.append(f"reclaimed: {report.reclaimed.objects} objects, "
                     f"{human_bytes(report.reclaimed.bytes)}")
    return lines


def _sync_lines(report: SyncReport) -> list[str]:
    lines = []
    for repo in report.repos:
        parts = [f"{_count(len(repo.copied), 'version')} copied",
                 f"{repo.present} already there"]
        if repo.grafted:
            parts.append(f"{len(repo.grafted)} added beside the destination's diverged "
                         f"branch ({', '.join(u[:8] for u in repo.grafted)}; see diced dag)")
        if repo.skipped:
            parts.append(f"{len(repo.skipped)} not copied")
        lines.append(f"{repo.name}: " + ", ".join(parts))
        lines += [f"  not copied: {uuid} ({why})" for uuid, why in repo.skipped]
        lines += [f"  conflict: {text}" for text in repo.conflicts]
    lines.append(f"wrote {_count(report.written.objects, 'object')} "
                 f"({human_bytes(report.written.bytes)}); "
                 f"{report.already_there.objects} were already there")
    return lines


def add_lifecycle_commands(group: click.Group,
                           open_store: Callable[..., AbstractContextManager[DicedStore]],
                           open_repo: Callable[[DicedStore, str, str | None], DicedRepo],
                           version_option: Callable[[Any], Any],
                           console: Callable[[], Console]) -> None:
    """Add the storage-lifecycle commands to ``group`` (see the module docstring)."""
    quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    exact = click.option("--bytes", "exact", is_flag=True,
                         help="Exact byte counts instead of kB/MB/GB.")
    copy_options = [
        click.option("--repo", "repos", multiple=True, metavar="NAME",
                     help="Copy this repo (repeatable; default: every repo)."),
        click.option("--version", "versions", multiple=True, metavar="REF",
                     help="Copy only this version and its ancestry (repeatable)."),
        click.option("--jobs", default=16, show_default=True, type=click.IntRange(1, 256),
                     help="Requests in flight at once."),
        quiet,
    ]

    def with_copy_options(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(copy_options):
            command = option(command)
        return command

    @group.command("du")
    @click.argument("location")
    @click.argument("repo", required=False)
    @version_option
    @exact
    def du(location: str, repo: str | None, version: str | None, exact: bool) -> None:
        """Stored (compressed) bytes per repo, or per version and array of REPO.

        "unique" is what no parent version needs (what deleting that version alone could
        free at most); "shared" what a parent needs too.
        """
        with open_store(location) as store:
            if repo is None:
                if version is not None:
                    raise click.UsageError("--version needs a REPO")
                report = store.storage_report()
                table = Table("repo", "objects", "stored", "unreferenced")
                for r in report.repos:
                    table.add_row(r.name, str(r.reachable.objects), _usage(r.reachable, exact),
                                  _usage(r.unreferenced, exact))
                console().print(table)
                click.echo(f"store: {report.total.objects} objects, "
                           f"{_usage(report.total, exact)}; unreferenced "
                           f"{_usage(report.unreferenced, exact)}; in the gc trash "
                           f"{_usage(report.trash, exact)}")
                return
            handle = open_repo(store, repo, None)
            usage = handle.storage_report(version)
        table = Table("version", "branch", "state", "array", "chunks", "stored", "unique",
                      "shared")
        for v in usage.versions:
            _version_rows(table, v, exact)
        console().print(table)
        click.echo(f"repo {usage.name}: {usage.reachable.objects} objects, "
                   f"{_usage(usage.reachable, exact)} needed by its versions; unreferenced "
                   f"{_usage(usage.unreferenced, exact)}")

    @group.command("fsck")
    @click.argument("location")
    @click.argument("repo", required=False)
    @version_option
    @quiet
    def fsck(location: str, repo: str | None, version: str | None, quiet: bool) -> None:
        """Check that everything reachable is present and intact (reads only).

        Lists each missing or corrupt object with the versions, arrays and chunks it
        affects; exit status 1 if there is any.
        """
        with open_store(location) as store, _interruptible():
            report = store.verify(repo, version, progress=False if quiet else None)
        for damage in report.damage:
            for line in damage.lines(report.repos):
                click.echo(line)
        if report.in_trash:
            click.echo(f"{len(report.in_trash)} reachable objects are held in the gc trash "
                       "(readers find them there; the next diced gc puts them back)")
        summary = (f"checked {report.checked.objects} objects "
                   f"({human_bytes(report.checked.bytes)} of chunk and file data)")
        if report.ok:
            click.echo(f"{summary}: no damage")
            return
        click.echo(f"{summary}: {_count(len(report.damage), 'damaged object')}")
        raise click.exceptions.Exit(1)

    @group.command("gc")
    @click.argument("location")
    @click.option("--grace", default=None, metavar="DURATION",
                  help=f"Never delete what was written this recently: seconds or 90s, 15m, "
                       f"1h, 2d, 1w (default {DEFAULT_GRACE / 3600:.0f}h).")
    @click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete "
                  "nothing.")
    @quiet
    def gc(location: str, grace: str | None, dry_run: bool, quiet: bool) -> None:
        """Delete every object no repo reaches (safe while others write and lock)."""
        seconds = DEFAULT_GRACE if grace is None else parse_duration(grace)
        with open_store(location) as store, _interruptible():
            report = store.gc(seconds, dry_run, progress=False if quiet else None)
        for line in _gc_lines(report):
            click.echo(line)

    def copy(source: str, target: str, repos: Sequence[str], versions: Sequence[str],
             jobs: int, quiet: bool, *, fresh: bool = False) -> None:
        with open_store(source) as src, open_store(target, create=True) as dst, \
                _interruptible():
            if fresh:
                taken = sorted({name for name, _ in dst.list_repos()}
                               & ({name for name, _ in src.list_repos()} if not repos
                                  else set(repos)))
                if taken:
                    raise AlreadyExistsError(
                        f"{target!r} already holds repo {taken[0]!r}; use diced sync to "
                        "copy new versions into it")
            report = src.sync_to(dst, repos=repos or None, versions=versions or None,
                                 jobs=jobs, progress=False if quiet else None)
        for line in _sync_lines(report):
            click.echo(line)
        if not report.ok:
            raise click.exceptions.Exit(1)

    @group.command("clone")
    @click.argument("source")
    @click.argument("destination")
    @with_copy_options
    def clone(source: str, destination: str, repos: tuple[str, ...],
              versions: tuple[str, ...], jobs: int, quiet: bool) -> None:
        """Copy repos (or versions and their ancestry) from SOURCE into a store that does
        not hold them yet, keeping UUIDs, branches and tags."""
        copy(source, destination, repos, versions, jobs, quiet, fresh=True)

    @group.command("sync")
    @click.argument("source")
    @click.argument("destination")
    @with_copy_options
    def sync(source: str, destination: str, repos: tuple[str, ...],
             versions: tuple[str, ...], jobs: int, quiet: bool) -> None:
        """Copy to DESTINATION the locked versions of SOURCE it lacks (only the objects it
        lacks); re-run to finish an interrupted copy. Never overwrites."""
        copy(source, destination, repos, versions, jobs, quiet)

    @group.command("push")
    @click.argument("local")
    @click.argument("remote")
    @with_copy_options
    def push(local: str, remote: str, repos: tuple[str, ...], versions: tuple[str, ...],
             jobs: int, quiet: bool) -> None:
        """diced sync LOCAL REMOTE: send new versions to another store."""
        copy(local, remote, repos, versions, jobs, quiet)

    @group.command("pull")
    @click.argument("local")
    @click.argument("remote")
    @with_copy_options
    def pull(local: str, remote: str, repos: tuple[str, ...], versions: tuple[str, ...],
             jobs: int, quiet: bool) -> None:
        """diced sync REMOTE LOCAL: fetch new versions from another store."""
        copy(remote, local, repos, versions, jobs, quiet)

    @group.command("delete-branch")
    @click.argument("location")
    @click.argument("repo")
    @click.argument("branch")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def delete_branch(location: str, repo: str, branch: str, yes: bool) -> None:
        """Remove BRANCH's versions that nothing else needs (gc frees their data)."""
        with open_store(location) as store:
            handle = open_repo(store, repo, None)
            if not yes:
                click.confirm(f"delete branch {branch!r} of repo {repo!r}?", abort=True)
            result = handle.delete_branch(branch)
        click.echo(f"deleted {_count(len(result.deleted), 'version')} of branch {branch!r}")
        for uuid, why in result.kept:
            click.echo(f"kept {uuid}: {why}")

    @group.command("delete-version")
    @click.argument("location")
    @click.argument("repo")
    @click.argument("ref", metavar="VERSION")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def delete_version(location: str, repo: str, ref: str, yes: bool) -> None:
        """Abandon an open version that has no children (gc frees its data)."""
        with open_store(location) as store:
            handle = open_repo(store, repo, None)
            if not yes:
                click.confirm(f"abandon version {ref!r} of repo {repo!r}?", abort=True)
            handle.delete_version(ref)
        click.echo(f"deleted version {ref}")
