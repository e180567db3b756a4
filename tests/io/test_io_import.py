"""Importing every supported source format: files written by the real libraries, compared
with numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
import zarr
from PIL import Image

from diced import DicedRepo
from diced.io import import_array
from tests.io.conftest import CHUNKS, write_stack


def check(repo: DicedRepo, name: str, source: Any, expected: npt.NDArray[Any],
          **options: Any) -> None:
    arr = import_array(repo, name, source, chunks=CHUNKS, progress=False, **options)
    assert arr.shape == expected.shape and arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr[...], expected)
    assert np.array_equal(repo.get_array(name)[...], expected)


def test_tiff_stack_sorts_naturally(repo: DicedRepo, tmp_path: Path,
                                    volume: npt.NDArray[Any]) -> None:
    # z0..z36: a plain sort would put z10 before z2 and scramble the volume.
    write_stack(tmp_path / "stack", volume)
    check(repo, "em", tmp_path / "stack", volume)


def test_tiff_glob_picks_only_matching_slices(repo: DicedRepo, tmp_path: Path,
                                              volume: npt.NDArray[Any]) -> None:
    write_stack(tmp_path / "mixed", volume, "slice_{}.tiff")
    tifffile.imwrite(tmp_path / "mixed" / "overview.tiff", np.zeros((5, 5), np.uint16))
    check(repo, "em", str(tmp_path / "mixed" / "slice_*.tiff"), volume)


def test_png_slices(repo: DicedRepo, tmp_path: Path) -> None:
    planes = np.random.default_rng(1).integers(0, 256, (12, 20, 30), dtype=np.uint8)
    (tmp_path / "png").mkdir()
    for i, plane in enumerate(planes):
        Image.fromarray(plane).save(tmp_path / "png" / f"img{i}.png")
    check(repo, "png", tmp_path / "png", planes)


def test_multipage_tiff(repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any]) -> None:
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for plane in volume:
            tif.write(plane)  # one series per page: not a "shaped" 3-D file
    with tifffile.TiffFile(tmp_path / "pages.tif") as tif:
        assert len(tif.pages) == len(tif.series) == len(volume)
    tifffile.imwrite(tmp_path / "volume.tif", volume)
    tifffile.imwrite(tmp_path / "imagej.tif", volume, imagej=True)
    tifffile.imwrite(tmp_path / "big-endian.tif", volume, byteorder=">")
    check(repo, "pages", tmp_path / "pages.tif", volume)
    check(repo, "shaped", tmp_path / "volume.tif", volume)
    check(repo, "imagej", tmp_path / "imagej.tif", volume)
    check(repo, "big_endian", tmp_path / "big-endian.tif", volume)


def test_tiff_compressed_tiled_volume(repo: DicedRepo, tmp_path: Path,
                                      volume: npt.NDArray[Any]) -> None:
    tifffile.imwrite(tmp_path / "tiled.tif", volume, tile=(16, 16), compression="zlib")
    check(repo, "tiled", tmp_path / "tiled.tif", volume)


def test_single_2d_tiff_imports_as_2d(repo: DicedRepo, tmp_path: Path) -> None:
    image = np.arange(50 * 70, dtype=np.float32).reshape(50, 70)
    tifffile.imwrite(tmp_path / "plane.tif", image)
    arr = import_array(repo, "plane", tmp_path / "plane.tif", chunks=(16, 16), progress=False)
    assert np.array_equal(arr[...], image)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "contiguous"])
def test_hdf5_dataset(repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any],
                      chunked: bool) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("raw/em", data=volume, chunks=(8, 8, 8) if chunked else None,
                         compression="gzip" if chunked else None)
        f.create_dataset("raw/other", data=np.zeros(3))
    check(repo, "em", f"{tmp_path}/f.h5:/raw/em", volume)


def test_hdf5_file_with_one_dataset_needs_no_path(repo: DicedRepo, tmp_path: Path,
                                                   volume: npt.NDArray[Any]) -> None:
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f.create_dataset("deep/inside/volume", data=volume.astype(">i4"))
    check(repo, "em", tmp_path / "one.hdf5", volume.astype(np.int32))


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_array(repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any],
                    fmt: int) -> None:
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=volume.shape, chunks=(10, 10, 10),
                          dtype=volume.dtype, zarr_format=fmt)  # type: ignore[arg-type]
    z[...] = volume
    check(repo, "em", tmp_path / "a.zarr", volume)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_group_and_array_path(repo: DicedRepo, tmp_path: Path,
                                   volume: npt.NDArray[Any], fmt: int) -> None:
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w",
                            zarr_format=fmt)  # type: ignore[arg-type]
    group.create_array("scale0/raw", shape=volume.shape, chunks=(20, 20, 20),
                       dtype=volume.dtype)[...] = volume
    group.create_array("scale1/raw", shape=(3, 3, 3), dtype=np.uint8)
    check(repo, "em", f"{tmp_path}/g.zarr:/scale0/raw", volume)


def test_n5_dataset_written_by_tensorstore(repo: DicedRepo, tmp_path: Path,
                                           volume: npt.NDArray[Any]) -> None:
    ts = pytest.importorskip("tensorstore")
    n5 = ts.open({"driver": "n5", "kvstore": {"driver": "file",
                                             "path": str(tmp_path / "v.n5" / "s0")},
                  "metadata": {"dimensions": list(volume.shape), "blockSize": [16, 8, 16],
                               "dataType": "uint16", "compression": {"type": "gzip"}},
                  "create": True}).result()
    n5.write(volume).result()
    (tmp_path / "v.n5" / "attributes.json").write_text('{"n5": "2.0.0"}')
    check(repo, "em", f"{tmp_path}/v.n5:/s0", volume)


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy(repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any], order: str) -> None:
    np.save(tmp_path / "v.npy", np.asarray(volume, order=order))
    check(repo, "em", tmp_path / "v.npy", volume)


def test_numpy_array_source(repo: DicedRepo, volume: npt.NDArray[Any]) -> None:
    check(repo, "em", volume, volume)


def test_offset_places_the_source_inside_an_unbounded_array(
        repo: DicedRepo, tmp_path: Path, volume: npt.NDArray[Any]) -> None:
    arr = repo.create_array("big", np.uint16, chunks=CHUNKS)
    arr[0:2, 0:2, 0:2] = 7
    write_stack(tmp_path / "stack", volume)
    import_array(repo, "big", tmp_path / "stack", offset=(100, 5, 33), progress=False)
    assert np.array_equal(arr[100:137, 5:34, 33:74], volume)
    assert np.array_equal(arr[0:2, 0:2, 0:2], np.full((2, 2, 2), 7))
    assert arr[99, 5, 33] == 0 and arr[137, 5, 33] == 0
    assert arr.get_extents()[0] == slice(0, 144)


def test_offset_into_a_new_array_pads_the_front(repo: DicedRepo,
                                                volume: npt.NDArray[Any]) -> None:
    arr = import_array(repo, "padded", volume, offset=(3, 0, 20), chunks=CHUNKS,
                       progress=False)
    assert arr.shape == (40, 29, 61)
    assert np.array_equal(arr[3:, :, 20:], volume) and not arr[:3].any()


def test_smaller_dtype_fits_an_existing_array(repo: DicedRepo,
                                              volume: npt.NDArray[Any]) -> None:
    repo.create_array("wide", np.float64, shape=volume.shape, chunks=CHUNKS)
    arr = import_array(repo, "wide", volume, progress=False)
    assert arr.dtype == np.float64 and np.array_equal(arr[...], volume)


def test_labels_become_a_uint64_label_volume(repo: DicedRepo, tmp_path: Path) -> None:
    labels = np.random.default_rng(2).integers(0, 5, (20, 18, 17), dtype=np.uint32)
    with h5py.File(tmp_path / "seg.h5", "w") as f:
        f["seg"] = labels
    arr = import_array(repo, "seg", f"{tmp_path}/seg.h5:seg", labels=True, progress=False)
    assert arr.islabel3D and arr.dtype == np.uint64
    assert np.array_equal(arr[...], labels)


def test_sparse_source_stores_only_its_data_chunks(repo: DicedRepo) -> None:
    sparse = np.zeros((64, 64, 64), dtype=np.uint8)
    sparse[40:42, 3:5, 60:62] = 9
    arr = import_array(repo, "sparse", sparse, chunks=CHUNKS, progress=False)
    assert set(arr.chunk_digests()) == {(2, 0, 3)}
    assert np.array_equal(arr[...], sparse)


def test_tiff_hyperstack_with_channels(repo: DicedRepo, tmp_path: Path) -> None:
    # ImageJ ZCYX: two pages per z-slice, so rows are read two pages at a time.
    stack = np.random.default_rng(3).integers(0, 255, (9, 2, 20, 24), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "zc.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    arr = import_array(repo, "zc", tmp_path / "zc.tif", chunks=(4, 2, 16, 16),
                       progress=False)
    assert np.array_equal(arr[...], stack)
