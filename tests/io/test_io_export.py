"""Exporting to every supported format, read back with the same libraries that wrote the
inputs: equal to the array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
import zarr

from diced import AlreadyExistsError, DicedRepo
from diced.io import export_array, import_array
from diced.io.tiff import natural_key
from tests.io.conftest import CHUNKS


@pytest.fixture
def em(repo: DicedRepo, volume: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Array "em" of the repo holds ``volume``; returns it."""
    import_array(repo, "em", volume, chunks=CHUNKS, progress=False)
    return volume


def read_stack(directory: Path) -> npt.NDArray[Any]:
    files = sorted(directory.glob("*.tif"), key=lambda p: natural_key(p.name))
    return np.stack([tifffile.imread(f) for f in files])


def test_tiff_stack(repo: DicedRepo, tmp_path: Path, em: npt.NDArray[Any]) -> None:
    export_array(repo, "em", tmp_path / "stack", progress=False)
    names = sorted(p.name for p in (tmp_path / "stack").iterdir())
    assert names[:2] == ["0000.tif", "0001.tif"] and len(names) == len(em)
    assert np.array_equal(read_stack(tmp_path / "stack"), em)


def test_tiff_stack_round_trips_through_import(repo: DicedRepo, tmp_path: Path,
                                               em: npt.NDArray[Any]) -> None:
    export_array(repo, "em", tmp_path / "stack", progress=False)
    again = import_array(repo, "again", tmp_path / "stack", progress=False)
    assert np.array_equal(again[...], em)


def test_one_tiff(repo: DicedRepo, tmp_path: Path, em: npt.NDArray[Any]) -> None:
    export_array(repo, "em", str(tmp_path / "em.tif"), progress=False)
    assert np.array_equal(tifffile.imread(tmp_path / "em.tif"), em)
    with tifffile.TiffFile(tmp_path / "em.tif") as tif:
        assert len(tif.pages) == len(em) and len(tif.series) == 1


def test_2d_array_to_one_tiff(repo: DicedRepo, tmp_path: Path) -> None:
    image = np.random.default_rng(4).random((40, 50)).astype(np.float32)
    arr = import_array(repo, "plane", image, chunks=(16, 16), progress=False)
    export_array(arr, None, str(tmp_path / "plane.tiff"), progress=False)
    assert np.array_equal(tifffile.imread(tmp_path / "plane.tiff"), image)


def test_hdf5_new_file_and_into_an_existing_one(repo: DicedRepo, tmp_path: Path,
                                                em: npt.NDArray[Any]) -> None:
    export_array(repo, "em", f"{tmp_path}/new.h5", progress=False)
    with h5py.File(tmp_path / "new.h5") as f:
        assert np.array_equal(f["data"][...], em)
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f["keep"] = np.arange(5)
    export_array(repo, "em", f"{tmp_path}/old.h5:/volumes/em", progress=False)
    with h5py.File(tmp_path / "old.h5") as f:
        assert np.array_equal(f["volumes/em"][...], em)
        assert f["volumes/em"].chunks == CHUNKS
        assert np.array_equal(f["keep"][...], np.arange(5))
    with pytest.raises(AlreadyExistsError, match="overwrite"):
        export_array(repo, "em", f"{tmp_path}/old.h5:/volumes/em", progress=False)
    export_array(repo, "em", f"{tmp_path}/old.h5:/volumes/em", overwrite=True,
                 box=(slice(0, 5), slice(None), slice(None)), progress=False)
    with h5py.File(tmp_path / "old.h5") as f:
        assert np.array_equal(f["volumes/em"][...], em[:5])


def test_zarr_v3(repo: DicedRepo, tmp_path: Path, em: npt.NDArray[Any]) -> None:
    export_array(repo, "em", tmp_path / "em.zarr", progress=False)
    z = zarr.open_array(str(tmp_path / "em.zarr"), mode="r")
    assert z.metadata.zarr_format == 3 and z.chunks == CHUNKS
    assert np.array_equal(z[...], em)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("existing", shape=(2,), dtype=np.uint8)
    export_array(repo, "em", f"{tmp_path}/g.zarr:/scans/em", progress=False)
    assert np.array_equal(zarr.open_array(str(tmp_path / "g.zarr"), path="scans/em")[...], em)


def test_box_of_an_old_locked_version(repo: DicedRepo, tmp_path: Path,
                                      em: npt.NDArray[Any]) -> None:
    repo.lock_node("imported")
    locked = repo.uuid
    repo.change_version(repo.create_branch("edit"))
    repo.get_array("em")[...] = 0
    repo.change_version(locked)
    box = (slice(5, 30), slice(None, 20), slice(17, None))
    export_array(repo, "em", tmp_path / "box.tif", box=box, progress=False)
    assert np.array_equal(tifffile.imread(tmp_path / "box.tif"), em[5:30, :20, 17:])


def test_unbounded_array_exports_its_extents(repo: DicedRepo, tmp_path: Path,
                                             volume: npt.NDArray[Any]) -> None:
    arr = repo.create_array("u", np.uint16, chunks=CHUNKS)
    arr[16:16 + 37, 0:29, 32:32 + 41] = volume
    export_array(repo, "u", tmp_path / "u.zarr", progress=False)
    out = zarr.open_array(str(tmp_path / "u.zarr"), mode="r")[...]
    assert out.shape == (48, 32, 48)  # chunk-aligned extents: 16:64, 0:32, 32:80
    assert np.array_equal(out[:37, :29, :41], volume)


def test_overwrite_replaces_a_destination(repo: DicedRepo, tmp_path: Path,
                                          em: npt.NDArray[Any]) -> None:
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "stale.txt").write_text("old")
    with pytest.raises(AlreadyExistsError, match="overwrite"):
        export_array(repo, "em", tmp_path / "stack", progress=False)
    assert (tmp_path / "stack" / "stale.txt").exists()
    export_array(repo, "em", tmp_path / "stack", overwrite=True, progress=False)
    assert not (tmp_path / "stack" / "stale.txt").exists()
    assert np.array_equal(read_stack(tmp_path / "stack"), em)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
