"""``diced import`` and ``diced export`` through click's runner, and the progress bar."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from click.testing import CliRunner, Result
from rich.console import Console

from diced import DicedStore
from diced.cli import main
from diced.io import import_array
from diced.progress import TransferProgress
from tests.io.conftest import write_stack


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: Any) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def error(*args: Any) -> str:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr


@pytest.fixture
def location(tmp_path: Path) -> str:
    location = str(tmp_path / "store")
    ok("create", location, "r")
    return location


def array(location: str, name: str, version: str | None = None) -> npt.NDArray[Any]:
    with DicedStore(location) as store:
        repo = store.open_repo("r")
        if version:
            repo.change_version(version)
        data: npt.NDArray[Any] = repo.get_array(name)[...]
        return data


def test_import_then_export(location: str, tmp_path: Path, volume: npt.NDArray[Any]) -> None:
    write_stack(tmp_path / "stack", volume)
    out = ok("import", location, "r", "em", tmp_path / "stack", "--chunks", "16,16,16").stdout
    assert out.startswith(f"imported {tmp_path / 'stack'} into em (37x29x41 uint16) at ")
    assert out.count("\n") == 1  # no progress bar when stdout is not a terminal
    assert np.array_equal(array(location, "em"), volume)
    ok("export", location, "r", "em", tmp_path / "em.tif", "--box", "2:30,:,10:", "--quiet")
    assert np.array_equal(tifffile.imread(tmp_path / "em.tif"), volume[2:30, :, 10:])
    ok("export", location, "r", "em", tmp_path / "plain", "--format", "zarr", "-q")
    assert (tmp_path / "plain" / "zarr.json").exists()
    assert "overwrite" in error("export", location, "r", "em", tmp_path / "em.tif")
    ok("export", location, "r", "em", tmp_path / "em.tif", "--overwrite")
    assert np.array_equal(tifffile.imread(tmp_path / "em.tif"), volume)


def test_import_at_an_offset_into_a_branch(location: str, tmp_path: Path,
                                           volume: npt.NDArray[Any]) -> None:
    np.save(tmp_path / "v.npy", volume)
    ok("import", location, "r", "em", tmp_path / "v.npy", "--quiet")
    ok("lock", location, "r", "-m", "first import")
    assert "is locked" in error("import", location, "r", "em", tmp_path / "v.npy",
                                "--offset", "0,0,0")
    child = ok("branch", location, "r", "-m", "shifted copy", "--name", "shift").stdout.strip()
    ok("import", location, "r", "em", tmp_path / "v.npy", "--version", child,
       "--offset", "0,0,0")
    shifted = volume.copy()
    shifted[10:] = volume[:27]
    np.save(tmp_path / "part.npy", volume[:27])
    ok("import", location, "r", "em", tmp_path / "part.npy", "--version", ":shift",
       "--offset", "10,0,0")
    assert np.array_equal(array(location, "em", child), shifted)
    assert np.array_equal(array(location, "em", ":master"), volume)


def test_cli_errors_are_one_line(location: str, tmp_path: Path) -> None:
    assert "no file or directory" in error("import", location, "r", "em", tmp_path / "none")
    assert "--offset must be integers" in error("import", location, "r", "em",
                                                tmp_path / "none", "--offset", "a,b")
    assert "START:STOP" in error("export", location, "r", "em", tmp_path / "x.tif",
                                 "--box", "1-2")
    assert "no diced store" in error("import", tmp_path / "nostore", "r", "em", tmp_path)
    labels = np.zeros((4, 4, 4), np.float32)
    np.save(tmp_path / "f.npy", labels)
    assert "unsigned" in error("import", location, "r", "seg", tmp_path / "f.npy", "--labels")


def test_progress_bar_shows_bytes_rate_and_time_left(repo: Any,
                                                     volume: npt.NDArray[Any]) -> None:
    screen = io.StringIO()
    bar = TransferProgress("import em", volume.nbytes, show=True,
                           console=Console(file=screen, force_terminal=True, width=120))
    with bar:
        bar.advance(volume.nbytes // 2)
        bar.advance(volume.nbytes - volume.nbytes // 2)
    text = screen.getvalue()
    assert "import em" in text and "88.0/88.0 kB" in text and "B/s" in text
    with TransferProgress("import em", 10, show=False,
                          console=Console(file=screen, force_terminal=True)) as quiet:
        quiet.advance(10)
    assert screen.getvalue() == text
    import_array(repo, "em", volume, progress=None)  # not a terminal here: no bar, no error
