"""``diced import`` and ``diced export``: the command-line face of :mod:`diced.io`.

The commands are added to the ``diced`` group by :func:`add_io_commands`, which takes the
group's own helpers for opening a store and a repo at a version, so both commands behave
exactly like the others (errors, ``--version``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import click

from diced.errors import InvalidInputError
from diced.io import export_array, import_array
from diced.io.formats import DESTINATIONS
from diced.repo import DicedRepo
from diced.store import DicedStore

__all__ = ["add_io_commands", "parse_box", "parse_ints"]

_INTERRUPTED = ("interrupted: the chunks written so far are stored whole; run the same "
                "command again to finish")


def parse_ints(text: str | None, what: str) -> tuple[int, ...] | None:
    """``"64,64,64"`` → ``(64, 64, 64)``; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidInputError(f"{what} must be integers separated by commas, such as "
                                f"64,64,64; got {text!r}") from None


def parse_box(text: str | None) -> tuple[slice, ...] | None:
    """``"0:100,:,50:"`` → one slice per axis (an empty end means the array's edge)."""
    if text is None:
        return None
    box = []
    for part in text.split(","):
        ends = part.split(":")
        try:
            if len(ends) != 2:
                raise ValueError(part)
            box.append(slice(int(ends[0]) if ends[0].strip() else None,
                             int(ends[1]) if ends[1].strip() else None))
        except ValueError:
            raise InvalidInputError(f"--box takes START:STOP per axis, separated by commas "
                                    f"(such as 0:64,:,100:200); got {text!r}") from None
    return tuple(box)


def add_io_commands(group: click.Group,
                    open_store: Callable[[str], AbstractContextManager[DicedStore]],
                    open_repo: Callable[[DicedStore, str, str | None], DicedRepo],
                    version_option: Callable[[Any], Any]) -> None:
    """Add ``import`` and ``export`` to ``group``, using the group's store and repo openers."""

    @group.command("import")
    @click.argument("location")
    @click.argument("repo")
    @click.argument("array")
    @click.argument("source")
    @version_option
    @click.option("--chunks", metavar="Z,Y,X", help="Chunk shape of a new array "
                  "(default 64,64,64 in 3-D).")
    @click.option("--offset", metavar="Z,Y,X",
                  help="Where the source's first voxel goes in the array (default: origin).")
    @click.option("--labels", is_flag=True,
                  help="Make a new array a 3-D uint64 label volume.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def import_command(location: str, repo: str, array: str, source: str,
                       version: str | None, chunks: str | None, offset: str | None,
                       labels: bool, quiet: bool) -> None:
        """Import SOURCE into ARRAY of an open version (created if missing).

        SOURCE: a directory or glob of 2-D TIFF/PNG slices, a 3-D or multi-page TIFF,
        FILE.h5:/DATASET, a zarr (v2, v3) or N5 directory (DIR:/PATH for an array in a
        group), or a .npy file. Re-running an interrupted import finishes it.
        """
        with open_store(location) as store:
            handle = open_repo(store, repo, version)
            try:
                arr = import_array(handle, array, source, offset=parse_ints(offset, "--offset"),
                                   chunks=parse_ints(chunks, "--chunks"), labels=labels,
                                   progress=False if quiet else None)
            except KeyboardInterrupt:
                click.echo(_INTERRUPTED, err=True)
                raise click.exceptions.Exit(130) from None
            click.echo(f"imported {source} into {arr.name} "
                       f"({'x'.join(map(str, arr.shape))} {arr.dtype}) at {handle.uuid}")

    @group.command("export")
    @click.argument("location")
    @click.argument("repo")
    @click.argument("array")
    @click.argument("dest")
    @version_option
    @click.option("--box", metavar="Z0:Z1,Y0:Y1,X0:X1",
                  help="Export only this box (an empty end: the array's edge).")
    @click.option("--format", "format_", type=click.Choice(list(DESTINATIONS)),
                  help="Output format (default: from DEST's suffix; none: tiff-stack).")
    @click.option("--overwrite", is_flag=True, help="Replace DEST if it exists.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def export_command(location: str, repo: str, array: str, dest: str, version: str | None,
                       box: str | None, format_: str | None, overwrite: bool,
                       quiet: bool) -> None:
        """Export ARRAY of a version (or a box of it) to DEST.

        DEST: a directory (a TIFF stack, one file per z), X.tif, X.h5[:/DATASET] or
        X.zarr. DEST appears only once the export is complete.
        """
        with open_store(location) as store:
            handle = open_repo(store, repo, version)
            try:
                export_array(handle, array, dest, box=parse_box(box), overwrite=overwrite,
                             format=format_, progress=False if quiet else None)
            except KeyboardInterrupt:
                click.echo(f"interrupted: {dest} was not written", err=True)
                raise click.exceptions.Exit(130) from None
            click.echo(f"exported {array} at {handle.uuid} to {dest}")
