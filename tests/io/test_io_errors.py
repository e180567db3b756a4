"""Bad sources and destinations get a clear DicedException and change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import tifffile

from diced import (
    AlreadyExistsError,
    DicedException,
    DicedRepo,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    NotFoundError,
)
from diced.io import export_array, import_array
from tests.io.conftest import CHUNKS, write_stack


def arrays(repo: DicedRepo) -> list[str]:
    return [name for name, _ in repo.list_instances()]


def fails(repo: DicedRepo, source: Any, error: type[DicedException], match: str,
          **options: Any) -> None:
    """Importing ``source`` raises ``error`` and creates no array."""
    before = arrays(repo)
    with pytest.raises(error, match=match):
        import_array(repo, "em", source, progress=False, **options)
    assert arrays(repo) == before


def test_missing_sources(repo: DicedRepo, tmp_path: Path) -> None:
    fails(repo, tmp_path / "nothing.tif", NotFoundError, "no file or directory")
    fails(repo, str(tmp_path / "z*.tif"), NotFoundError, "no files match")
    (tmp_path / "empty").mkdir()
    fails(repo, tmp_path / "empty", NotFoundError, "no TIFF or PNG slices")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["a"] = np.zeros(3)
        f["b"] = np.zeros(3)
    fails(repo, f"{tmp_path}/f.h5:/c", NotFoundError, "no dataset 'c'.*a, b")
    fails(repo, tmp_path / "f.h5", InvalidInputError, "holds 2 datasets")


def test_unreadable_sources(repo: DicedRepo, tmp_path: Path) -> None:
    for name in ("bad.tif", "bad.h5", "bad.npy"):
        (tmp_path / name).write_bytes(b"this is not the format its name claims" * 10)
        fails(repo, tmp_path / name, InvalidInputError, "cannot read")
    (tmp_path / "notes.txt").write_text("hello")
    fails(repo, tmp_path / "notes.txt", InvalidInputError, "cannot tell the format")
    write_stack(tmp_path / "stack", np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "stack" / "z3.tif").write_bytes(b"truncated")
    fails(repo, tmp_path / "stack", InvalidInputError, "cannot read slice .*z3.tif")


def test_slices_of_different_shapes_or_dtypes(repo: DicedRepo, tmp_path: Path) -> None:
    write_stack(tmp_path / "shapes", np.zeros((12, 8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "shapes" / "z7.tif", np.zeros((8, 9), np.uint8))
    fails(repo, tmp_path / "shapes", InvalidInputError, r"slices differ.*z7.tif.*\(8, 9\)")
    write_stack(tmp_path / "dtypes", np.zeros((12, 8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "dtypes" / "z11.tif", np.zeros((8, 8), np.uint16))
    fails(repo, tmp_path / "dtypes", InvalidInputError, "slices differ.*z11.tif.*uint16")


def test_dtypes_diced_does_not_store(repo: DicedRepo, tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", np.zeros((4, 4, 4), np.complex64))
    fails(repo, tmp_path / "c.npy", InvalidInputError, "complex64.*does not store")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["names"] = np.array([b"ab", b"cd"])
    fails(repo, tmp_path / "s.h5", InvalidInputError, "S2.*does not store")


def test_source_unsuited_to_the_existing_array(repo: DicedRepo,
                                               volume: npt.NDArray[Any]) -> None:
    repo.create_array("em", np.uint8, shape=(100, 100, 100), chunks=CHUNKS)
    fails(repo, volume, InvalidInputError, "holds uint8.*uint16")
    fails(repo, volume.astype(np.uint8), InvalidIndexError, "does not fit",
          offset=(70, 0, 0))
    fails(repo, volume[0].astype(np.uint8), InvalidInputError, "3 dimensions")
    fails(repo, volume.astype(np.uint8), InvalidInputError, "chunks", chunks=(8, 8, 8))
    fails(repo, volume.astype(np.uint8), InvalidInputError, "offset must be",
          offset=(1, 2))


def test_labels_need_unsigned_integers(repo: DicedRepo) -> None:
    fails(repo, np.zeros((4, 4, 4), np.float32), InvalidInputError, "unsigned", labels=True)


def test_locked_version_gets_nothing(repo: DicedRepo, volume: npt.NDArray[Any]) -> None:
    repo.create_array("kept", np.uint8, shape=(2,))
    repo.lock_node("done")
    with pytest.raises(LockedError, match="create a branch"):
        import_array(repo, "em", volume, progress=False)
    with pytest.raises(LockedError):
        import_array(repo, "kept", np.zeros(2, np.uint8), progress=False)
    assert arrays(repo) == ["kept"] and repo.locked


def test_export_errors(repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any]) -> None:
    import_array(repo, "em", volume, chunks=CHUNKS, progress=False)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    (tmp_path / "taken.tif").write_bytes(b"mine")
    with pytest.raises(AlreadyExistsError, match=r"taken\.tif.*overwrite"):
        export_array(repo, "em", tmp_path / "taken.tif", progress=False)
    assert (tmp_path / "taken.tif").read_bytes() == b"mine"
    with pytest.raises(NotFoundError):
        export_array(repo, "nope", tmp_path / "x.tif", progress=False)
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        export_array(repo, "em", tmp_path / "x.bmp", progress=False)
    with pytest.raises(InvalidIndexError, match="outside"):
        export_array(repo, "em", tmp_path / "x.tif", box=(slice(0, 99),) * 3, progress=False)
    with pytest.raises(InvalidInputError, match="not a writable HDF5 file"):
        export_array(repo, "em", f"{tmp_path}/taken.tif:/data", format="hdf5", progress=False)
    with pytest.raises(NotFoundError, match="does not exist"):
        export_array(repo, "em", tmp_path / "no" / "dir" / "x.tif", progress=False)
    flat = import_array(repo, "flat", volume[0], chunks=(16, 16), progress=False)
    with pytest.raises(InvalidInputError, match="TIFF stack holds 3-D"):
        export_array(flat, None, tmp_path / "flatstack", progress=False)
    empty = repo.create_array("empty", np.uint8)
    with pytest.raises(NotFoundError, match="holds no data"):
        export_array(empty, None, tmp_path / "e.tif", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.tif"]


def test_a_missing_format_package_names_the_extra() -> None:
    from diced.io.source import require

    hint = r"no_such_reader package: pip install 'diced\[io\]'"
    with pytest.raises(InvalidInputError, match=hint):
        require("no_such_reader.sub")
