"""``diced tag``, ``tags``, ``diff``, ``merge`` and ``blame``, and the graph of ``log --graph``.

The commands are added to the ``diced`` group by :func:`add_version_commands`, which takes
the group's own helpers for opening a store and a repo at a version, so they behave
exactly like the others (errors, ``--version``, ``--as-of``). Each calls the public API
(:class:`~diced.repo_versions.RepoVersioning`) and formats the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from diced.cli_io import parse_ints
from diced.repo import DicedRepo
from diced.store import DicedStore
from diced.versioning.diff import ArrayDiff, VersionDiff, VoxelChange
from diced.versioning.records import NodeRecord

__all__ = ["add_version_commands", "draw_graph"]

#: Chunks listed per array and kind by ``diced diff`` unless ``--all`` is given.
LISTED = 50


def _row(columns: Sequence[str | None], at: int, marks: dict[int, str]) -> str:
    cells = []
    for i in range(max(len(columns), at + 1, *(k + 1 for k in marks))):
        if i in marks:
            cells.append(marks[i])
        elif i == at or (i < len(columns) and columns[i] is not None):
            cells.append("|")
        else:
            cells.append(" ")
    return " ".join(cells).rstrip()


def draw_graph(records: Sequence[NodeRecord]) -> list[tuple[str, NodeRecord | None]]:
    """A text drawing of a DAG listed newest first, children before parents.

    Returns rows ``(graph, record)``: one row per node (``*`` in its column, ``|`` for
    the lines passing by) and connector rows (``record`` is ``None``) where lines join
    before a node with several children (``/``) or where a merge node opens a column for
    each further parent (``\\``).
    """
    columns: list[str | None] = []
    rows: list[tuple[str, NodeRecord | None]] = []
    for record in records:
        if record.uuid in columns:
            at = columns.index(record.uuid)
        else:
            at = columns.index(None) if None in columns else len(columns)
            if at == len(columns):
                columns.append(None)
        joins = [i for i, u in enumerate(columns) if u == record.uuid and i != at]
        for i in joins:
            columns[i] = None
        if joins:
            rows.append((_row(columns, at, dict.fromkeys(joins, "/")), None))
        rows.append((_row(columns, at, {at: "*"}), record))
        columns[at] = record.parents[0] if record.parents else None
        opened = []
        for parent in record.parents[1:]:
            if parent in columns:
                opened.append(columns.index(parent))
                continue
            free = next((i for i in range(at + 1, len(columns)) if columns[i] is None), None)
            if free is None:
                columns.append(parent)
                free = len(columns) - 1
            columns[free] = parent
            opened.append(free)
        if opened:
            rows.append((_row(columns, at, dict.fromkeys(opened, "\\")), None))
        while columns and columns[-1] is None:
            columns.pop()
    return rows


def _coords(coords: tuple[int, ...]) -> str:
    return ",".join(map(str, coords))


def _box(change: VoxelChange) -> str:
    if change.box is None:
        return "no voxel differs"
    box = ",".join(f"{a}:{b}" for a, b in change.box)
    return f"{change.voxels} voxels in {box}"


def _array_lines(change: ArrayDiff, voxels: dict[tuple[int, ...], VoxelChange] | None,
                 everything: bool) -> list[str]:
    meta = ", metadata changed" if change.metadata_changed else ""
    lines = [f"array {change.name} ({change.status}{meta}): {len(change.added)} chunks added, "
             f"{len(change.removed)} removed, {len(change.modified)} modified"]
    for sign, chunks in (("+", change.added), ("-", change.removed), ("~", change.modified)):
        shown = chunks if everything else chunks[:LISTED]
        for coords in shown:
            detail = f"  {_box(voxels[coords])}" if voxels is not None else ""
            lines.append(f"  {sign} {_coords(coords)}{detail}")
        if len(shown) < len(chunks):
            lines.append(f"  {sign} ... and {len(chunks) - len(shown)} more (--all lists "
                         "every chunk)")
    return lines


def diff_lines(diff: VersionDiff, voxels: bool, everything: bool) -> list[str]:
    """``diced diff``'s output for ``diff``."""
    lines = []
    for name, change in diff.arrays.items():
        lines += _array_lines(change, diff.voxels(name) if voxels else None, everything)
    for what, names in (("added", diff.files_added), ("removed", diff.files_removed),
                        ("modified", diff.files_modified)):
        lines += [f"file {name}: {what}" for name in names]
    return lines or ["no differences"]


def add_version_commands(group: click.Group,
                         open_store: Callable[[str], AbstractContextManager[DicedStore]],
                         open_repo: Callable[[DicedStore, str, str | None], DicedRepo],
                         version_option: Callable[[Any], Any],
                         console: Callable[[], Console]) -> None:
    """Add ``tag``, ``tags``, ``diff``, ``merge`` and ``blame`` to ``group``."""

    @group.command()
    @click.argument("location")
    @click.argument("repo")
    @click.argument("name")
    @version_option
    @click.option("--message", "-m", default="", help="What the tag marks.")
    def tag(location: str, repo: str, name: str, version: str | None, message: str) -> None:
        """Tag a locked version NAME forever (then address it as tag:NAME)."""
        with open_store(location) as store:
            created = open_repo(store, repo, version).create_tag(name, message=message)
        click.echo(f"tagged {created.uuid} as {created.name}")

    @group.command()
    @click.argument("location")
    @click.argument("repo")
    def tags(location: str, repo: str) -> None:
        """List the tags of a repo."""
        table = Table("name", "uuid", "created", "message")
        with open_store(location) as store:
            for t in store.open_repo(repo).list_tags():
                table.add_row(t.name, t.uuid, t.created[:19].replace("T", " "), t.message)
        console().print(table)

    @group.command()
    @click.argument("location")
    @click.argument("repo")
    @click.argument("a")
    @click.argument("b")
    @click.option("--voxels", is_flag=True,
                  help="Also count the differing voxels of each changed chunk (decodes "
                       "the changed chunks).")
    @click.option("--all", "everything", is_flag=True,
                  help=f"List every changed chunk (default: the first {LISTED} per kind).")
    def diff(location: str, repo: str, a: str, b: str, voxels: bool, everything: bool
             ) -> None:
        """Show what differs from version A to version B (any references)."""
        with open_store(location) as store:
            lines = diff_lines(store.open_repo(repo).diff(a, b), voxels, everything)
        for line in lines:
            click.echo(line)

    @group.command()
    @click.argument("location")
    @click.argument("repo")
    @click.argument("versions", nargs=-1, required=True)
    @click.option("--message", "-m", required=True, help="Note of the merge version.")
    @click.option("--on-conflict", type=click.Choice(["fail", "ours", "theirs"]),
                  default="fail", show_default=True,
                  help="fail: write nothing and list the conflicts; ours: the first version "
                       "wins; theirs: the last wins.")
    @click.option("--name", "-n", "branch_name", default=None,
                  help="Start a new branch of this name (default: continue the first "
                       "version's branch).")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def merge(location: str, repo: str, versions: tuple[str, ...], message: str,
              on_conflict: str, branch_name: str | None, quiet: bool) -> None:
        """Merge two or more locked VERSIONS into a new open version; print its UUID."""
        with open_store(location) as store:
            try:
                merged = store.open_repo(repo).merge(
                    list(versions), message, on_conflict=on_conflict,  # type: ignore[arg-type]
                    name=branch_name, progress=False if quiet else None)
            except KeyboardInterrupt:
                click.echo("interrupted: the merged versions are untouched; `diced dag` shows "
                           "whether the merge version was created", err=True)
                raise click.exceptions.Exit(130) from None
        click.echo(merged)

    @group.command()
    @click.argument("location")
    @click.argument("repo")
    @click.argument("array")
    @click.argument("voxel", metavar="Z,Y,X")
    @version_option
    def blame(location: str, repo: str, array: str, voxel: str, version: str | None) -> None:
        """List the versions where the chunk holding voxel Z,Y,X of ARRAY changed.

        The voxel is one index per axis in numpy order, as for import --offset.
        """
        table = Table("uuid", "branch", "when", "message", "chunk digest")
        with open_store(location) as store:
            handle = open_repo(store, repo, version)
            position = parse_ints(voxel, "the voxel") or ()
            for change in handle.history(array, position):
                table.add_row(change.uuid, change.branch, change.when[:19].replace("T", " "),
                              change.message, change.digest or "(fill value)")
        console().print(table)
