"""The ``diced`` command line: browse and edit a store's repos, versions, arrays and files.

Each command opens the store at LOCATION, calls the public API once or twice, and
formats the result; there is no logic here that the API does not offer. Every
:class:`~diced.DicedException` is shown as one line ``error: <message>`` on stderr with
exit code 1; usage errors exit with 2, as click does.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from diced import __version__
from diced.cli_io import add_io_commands
from diced.cli_lifecycle import add_lifecycle_commands
from diced.cli_versions import add_version_commands, draw_graph
from diced.demo import run_demo
from diced.errors import DicedException, InvalidInputError, NotFoundError
from diced.repo import DicedRepo
from diced.store import DicedStore
from diced.versioning.graph import DEFAULT_BRANCH

__all__ = ["main"]

_VERSION_HELP = ("Version: full UUID, unique prefix, UUID:BRANCH, :BRANCH or tag:NAME "
                 "(default: the newest version of branch master).")
_AS_OF_HELP = ("Time travel: the newest version locked at or before TIME (ISO-8601, such as "
               "2024-05-01T12:00; no zone: UTC) on master, or on the branch --version "
               ":BRANCH names.")
_AS_OF = "diced.as_of"


class _DicedError(click.ClickException):
    """A :class:`DicedException` shown as ``error: <message>`` (exit code 1)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _DicedGroup(click.Group):
    """A command group that turns diced's expected errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DicedException as exc:
            raise _DicedError(" ".join(str(exc).split())) from exc


def _console() -> Console:
    # Markup off: repo, branch and file names may contain [brackets]. When piped, rich
    # would wrap at 80 columns and cut UUIDs; a wide fixed width keeps rows whole.
    wide = None if sys.stdout.isatty() else 200
    return Console(markup=False, highlight=False, emoji=False, width=wide)


@contextmanager
def _store(location: str, *, create: bool = False) -> Iterator[DicedStore]:
    """Open the store at ``location``; unless ``create``, a local one must already exist."""
    local = "://" not in location or location.startswith("file://")
    path = location.removeprefix("file://")
    if local and not create and not os.path.isdir(os.path.expanduser(path)):
        raise NotFoundError(f"no diced store at {location!r}; create one with "
                            f"`diced create {location} REPO`")
    with DicedStore(location) as store:
        yield store


def _open(store: DicedStore, name: str, version: str | None) -> DicedRepo:
    """Repo ``name`` at ``version`` (default: the newest version of master), or at the
    time the command's ``--as-of`` names."""
    repo = store.open_repo(name)
    context = click.get_current_context(silent=True)
    as_of = None if context is None else context.meta.get(_AS_OF)
    if as_of is not None:
        if version is not None and not version.startswith(":"):
            raise InvalidInputError("with --as-of, --version names the branch to travel "
                                    f"along, as :BRANCH; got {version!r}")
        repo.change_version(repo.version_at(as_of, version[1:] if version else DEFAULT_BRANCH))
    elif version is not None:
        repo.change_version(version)
    return repo


def _short(uuid: str) -> str:
    return uuid[:8]


def _when(timestamp: str | None) -> str:
    """An ISO-8601 record time, to the second, for tables."""
    return "" if timestamp is None else timestamp[:19].replace("T", " ")


_location = click.argument("location")
_repo_name = click.argument("repo")


def _remember_as_of(context: click.Context, _: click.Parameter, value: str | None
                    ) -> str | None:
    if value is not None:
        context.meta[_AS_OF] = value
    return value


def _version(command: Any) -> Any:
    """``--version REF`` and ``--as-of TIME``; :func:`_open` applies both."""
    command = click.option("--as-of", "as_of", metavar="TIME", help=_AS_OF_HELP,
                           expose_value=False, callback=_remember_as_of)(command)
    return click.option("--version", "version", metavar="REF", help=_VERSION_HELP)(command)


@click.group(cls=_DicedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="diced")
def main() -> None:
    """diced: versioned, chunked nD arrays with a git-like version graph.

    LOCATION is a store: a local directory, file://..., memory://..., gs://bucket/prefix
    or s3://bucket/prefix.
    """


@main.command()
@click.argument("location", default="./demo.diced")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=8),
              help="Edge length of the synthetic cube, in voxels.")
def demo(location: str, size: int) -> None:
    """Build repo "demo" at LOCATION (default ./demo.diced) and tour versioning.

    An existing repo "demo" there is replaced.
    """
    run_demo(location, size=size, echo=click.echo)


@main.command()
@_location
def repos(location: str) -> None:
    """List the repos of the store."""
    table = Table("name", "root uuid", "description", "created")
    with _store(location) as store:
        for name, root in store.list_repos():
            repo = store.open_repo(name)
            table.add_row(name, root, repo.description, _when(repo.node_record(root).created))
    _console().print(table)


@main.command()
@_location
@click.argument("name")
@click.option("--description", "-d", default="", help="Free-text description of the repo.")
def create(location: str, name: str, description: str) -> None:
    """Create repo NAME (the store is created if missing); print its root version."""
    with _store(location, create=True) as store:
        click.echo(store.create_repo(name, description).uuid)


@main.command()
@_location
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(location: str, name: str, yes: bool) -> None:
    """Delete repo NAME with all its versions (irreversible)."""
    with _store(location) as store:
        store.get_repouuid(name)
        if not yes:
            click.confirm(f"delete repo {name!r} and all its versions?", abort=True)
        store.delete_repo(name)
    click.echo(f"deleted repo {name!r}")


@main.command()
@_location
@_repo_name
@_version
@click.option("--graph", is_flag=True,
              help="Show the whole ancestry, merge parents included, newest first, with "
                   "the graph drawn and tags named.")
def log(location: str, repo: str, version: str | None, graph: bool) -> None:
    """Show the commit log from the root to a version (oldest first), or --graph."""
    with _store(location) as store:
        handle = _open(store, repo, version)
        if graph:
            tags: dict[str, list[str]] = {}
            for tag in handle.list_tags():
                tags.setdefault(tag.uuid, []).append(f"tag:{tag.name}")
            for drawing, record in draw_graph(handle.log()):
                if record is None:
                    click.echo(drawing)
                    continue
                message = record.lock_message if record.locked else "(open node)"
                names = " ".join([f"({record.branch})", *tags.get(record.uuid, [])])
                click.echo(f"{drawing} {_short(record.uuid)} {names} {message}".rstrip())
            return
        table = Table("uuid", "branch", "locked at", "message")
        for uuid, message in handle.get_commit_log():
            record = handle.node_record(uuid)
            table.add_row(uuid, record.branch, _when(record.locked_at), message)
    _console().print(table)


@main.command()
@_location
@_repo_name
def dag(location: str, repo: str) -> None:
    """Show every version of the repo, oldest first (* marks the leaf of a branch)."""
    table = Table("", "uuid", "branch", "state", "parents", "note", "message")
    with _store(location) as store:
        for node in store.open_repo(repo).list_nodes():
            table.add_row("*" if node.is_branch_leaf else "", _short(node.uuid), node.branch,
                          "locked" if node.locked else "open",
                          ",".join(_short(p) for p in node.parents), node.note,
                          node.lock_message)
    _console().print(table)


@main.command()
@_location
@_repo_name
@_version
@click.option("--message", "-m", required=True, help="Commit message.")
def lock(location: str, repo: str, version: str | None, message: str) -> None:
    """Lock a version forever with a commit message."""
    with _store(location) as store:
        handle = _open(store, repo, version)
        handle.lock_node(message)
        click.echo(f"locked {handle.uuid}")


@main.command()
@_location
@_repo_name
@_version
@click.option("--message", "-m", required=True, help="Note describing the new version.")
@click.option("--name", "-n", "branch_name", default=None,
              help="Start a new branch of this name (default: continue the version's branch).")
def branch(location: str, repo: str, version: str | None, message: str,
           branch_name: str | None) -> None:
    """Create an open child of a locked version; print its UUID."""
    with _store(location) as store:
        click.echo(_open(store, repo, version).create_branch(message, branch_name))


@main.command()
@_location
@_repo_name
@_version
def arrays(location: str, repo: str, version: str | None) -> None:
    """List the arrays of a version."""
    table = Table("name", "dtype", "shape", "chunks", "extents", "label")
    with _store(location) as store:
        handle = _open(store, repo, version)
        for name, _ in handle.list_instances():
            array = handle.get_array(name)
            shape = "unbounded" if array.unbounded else "x".join(map(str, array.shape))
            extents = ",".join(f"{s.start}:{s.stop}" for s in array.get_extents())
            table.add_row(name, str(array.dtype), shape, "x".join(map(str, array.chunks)),
                          extents, "yes" if array.islabel3D else "")
    _console().print(table)


@main.command()
@_location
@_repo_name
@_version
def files(location: str, repo: str, version: str | None) -> None:
    """List the files of a version, one per line."""
    with _store(location) as store:
        for name in _open(store, repo, version).list_files():
            click.echo(name)


@main.command()
@_location
@_repo_name
@click.argument("name")
@click.argument("file", type=click.File("rb"))
@_version
def put(location: str, repo: str, name: str, file: IO[bytes], version: str | None) -> None:
    """Store FILE (- for stdin) as file NAME in an open version."""
    data = file.read()
    with _store(location) as store:
        _open(store, repo, version).upload_filedata(name, data)


@main.command()
@_location
@_repo_name
@click.argument("name")
@_version
@click.option("--output", "-o", type=click.File("wb"), default="-",
              help="Write to this file instead of stdout.")
def get(location: str, repo: str, name: str, version: str | None, output: IO[bytes]) -> None:
    """Write the bytes of file NAME of a version to stdout (or --output)."""
    with _store(location) as store:
        data = _open(store, repo, version).download_filedata(name)
    output.write(data)
    output.flush()


@main.command()
@_location
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (anything but loopback exposes the store).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--allow-writes", is_flag=True,
              help="Let the pages and the API lock, branch and write (default: read-only).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this host name (behind a proxy); repeatable.")
@click.option("--cors-origin", "--cors", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let pages of this origin (scheme://host:port, or '*' for any) read "
                   "/zarr/; repeatable.")
@click.option("--token", envvar="DICED_TOKEN", metavar="SECRET",
              help="Changes must send 'Authorization: Bearer SECRET' (needed for writes on "
                   "a non-loopback --host); also read from $DICED_TOKEN.")
@click.option("--memory-budget", default=1024, show_default=True, type=click.IntRange(16),
              metavar="MIB", help="MiB of request and response data all requests may hold.")
@click.option("--body-timeout", default=5.0, show_default=True,
              type=click.FloatRange(0, 3600, min_open=True), metavar="SECONDS",
              help="Fail a request whose body stops arriving for this long (408).")
@click.option("--neuroglancer", "with_neuroglancer", is_flag=True,
              help="Also run a local neuroglancer on 127.0.0.1 (needs diced[neuroglancer]).")
@click.option("--neuroglancer-port", default=0, show_default=True,
              type=click.IntRange(0, 65535), metavar="PORT",
              help="Port of the local neuroglancer (0: any free port).")
def serve(location: str, host: str, port: int, allow_writes: bool,
          allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...], token: str | None,
          memory_budget: int, body_timeout: float, with_neuroglancer: bool,
          neuroglancer_port: int) -> None:
    """Serve the web viewer and HTTP API of the store at LOCATION until Ctrl-C.

    Only its own pages and programs may change the store (see docs/viewer.md).
    """
    from diced_viewer import ExposedServerWarning, ServerLimits, ViewerServer

    limits = ServerLimits(memory_budget=memory_budget * 2**20, body_timeout=body_timeout)
    with _store(location) as store:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExposedServerWarning)
            try:
                server = ViewerServer(store, host, port, allow_writes=allow_writes,
                                      allowed_hosts=allowed_hosts, cors_origins=cors_origins,
                                      token=token, limits=limits,
                                      neuroglancer_port=neuroglancer_port
                                      if with_neuroglancer else None)
            finally:  # the warning also matters when the address then cannot be bound
                for warning in caught:
                    click.echo(f"warning: {warning.message}", err=True)
        mode = "read-write" if allow_writes else "read-only"
        click.echo(f"diced viewer ({mode}) at {server.url}/  (Ctrl-C to stop)")
        if server.neuroglancer is not None:
            click.echo(f"local neuroglancer at {server.neuroglancer.origin}/ (open it from the "
                       "version and array pages)")
        if token is not None:
            click.echo(f"changes need the token: open {server.url}/?token=SECRET in a browser")
        with suppress(KeyboardInterrupt):  # uvicorn shut down cleanly, then re-raised Ctrl-C
            server.run()
    click.echo("diced viewer stopped")


# `diced import` and `diced export` live in their own module (diced/cli_io.py), `tag`,
# `tags`, `diff`, `merge` and `blame` in diced/cli_versions.py.
add_io_commands(main, _store, _open, _version)
# `diced du`, `fsck`, `gc`, `clone`, `sync`, `push`, `pull` and the deletions: cli_lifecycle.py.
add_lifecycle_commands(main, _store, _open, _version, _console)
add_version_commands(main, _store, _open, _version, _console)
