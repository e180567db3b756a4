"""xarray and zarr-python find and read every array of a version, locally and over HTTP."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import xarray as xr
import zarr
from _client_data import VOXEL_SIZE, ClientData
from zarr.storage import FsspecStore

from diced import DicedStore, InvalidInputError, LockedError


def _check_dataset(ds: xr.Dataset, data: ClientData, version: str) -> None:
    assert set(ds.data_vars) == {"img", "seg", "plane"}
    assert ds["img"].dims == ("z", "y", "x")
    assert ds["plane"].dims == ("row", "col")
    img, seg = (data.img_v1, data.seg_v1) if version == data.v1 else (data.img_v2, data.seg_v2)
    np.testing.assert_array_equal(ds["img"].values, img)
    np.testing.assert_array_equal(ds["seg"].values, seg)
    np.testing.assert_array_equal(ds["plane"].values, data.plane)
    assert ds["img"].attrs["diced"]["voxel_size"] == list(VOXEL_SIZE)


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_xarray_opens_a_version_locally(served: ClientData, which: str) -> None:
    version = getattr(served, which)
    repo = served.store.open_repo(uuid=version, readonly=True)
    _check_dataset(xr.open_zarr(repo.zarr_store(), consolidated=True), served, version)
    # Without consolidated metadata, xarray lists the store itself.
    _check_dataset(xr.open_zarr(repo.zarr_store(), consolidated=False), served, version)


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_xarray_opens_a_version_over_http(served: ClientData, which: str) -> None:
    version = getattr(served, which)
    _check_dataset(xr.open_zarr(served.zarr_url(version)), served, version)


def test_zarr_lists_a_versions_arrays_over_http(served: ClientData) -> None:
    store = FsspecStore.from_url(served.zarr_url(served.v2), read_only=True)
    consolidated = zarr.open_group(store, mode="r")
    assert sorted(consolidated.array_keys()) == ["img", "plane", "seg"]
    # Without consolidated metadata zarr lists directories: the root answers with an index.
    listed = zarr.open_group(store, mode="r", use_consolidated=False)
    assert sorted(listed.array_keys()) == ["img", "plane", "seg"]
    assert sorted(listed.group_keys()) == [".ome"]
    np.testing.assert_array_equal(listed["img"][...], served.img_v2)


def test_consolidated_metadata_is_never_stale(store: DicedStore) -> None:
    repo = store.create_repo("em")
    group = zarr.open_group(repo.zarr_store(), mode="r")
    assert list(group.array_keys()) == []
    repo.create_array("a", np.uint8, shape=(4, 4))
    zarr.open_group(repo.zarr_store(), mode="a").attrs["note"] = "kept"
    repo.create_array("b", np.uint8, shape=(2, 2, 2))
    root = json.loads(repo.zarr_store()._get_sync("zarr.json") or b"")
    assert sorted(k for k in root["consolidated_metadata"]["metadata"] if "/" not in k
                  and not k.startswith(".")) == ["a", "b"]
    assert root["attributes"] == {"note": "kept"}
    repo.delete_array("a")
    assert list(zarr.open_group(repo.zarr_store(), mode="r").array_keys()) == ["b"]


def test_dimension_names_defaults_and_choice(store: DicedStore) -> None:
    repo = store.create_repo("em")
    assert repo.create_array("v", np.uint8, shape=(4,)).dimension_names == ("x",)
    assert repo.create_array("p", np.uint8, shape=(4, 4)).dimension_names == ("y", "x")
    assert repo.create_array("c", np.uint8, dims=4).dimension_names == ("c", "z", "y", "x")
    assert repo.create_array("s", np.uint8, shape=(2,) * 6).dimension_names == \
        tuple(f"dim_{i}" for i in range(6))
    named = repo.create_array("t", np.float32, shape=(3, 5), dimension_names=("time", "cell"))
    assert named.zarr.metadata.dimension_names == ("time", "cell")
    # Arrays of other shapes share z, y, x: xarray opens them apart.
    ds = xr.open_zarr(repo.zarr_store(), consolidated=True, drop_variables=["v", "p", "c", "s"])
    assert ds["t"].dims == ("time", "cell")
    for bad in [("a",), ("a", "a"), "ab", ("a", "")]:
        with pytest.raises(InvalidInputError, match="dimension_names"):
            repo.create_array("bad", np.uint8, shape=(2, 2), dimension_names=bad)


def test_voxel_size_is_versioned(store: DicedStore) -> None:
    repo = store.create_repo("em")
    arr = repo.create_array("img", np.uint8, shape=(4, 4, 4))
    assert arr.voxel_size == (1.0, 1.0, 1.0) and arr.unit is None
    arr.set_voxel_size((40, 8, 8), unit="nanometer")
    assert (arr.voxel_size, arr.unit) == ((40.0, 8.0, 8.0), "nanometer")
    repo.lock_node("scaled")
    first = repo.uuid
    with pytest.raises(LockedError):
        repo.get_array("img").set_voxel_size((1, 1, 1))
    repo.change_version(repo.create_branch("rescan"))
    repo.get_array("img").set_voxel_size((30, 4, 4), unit="micrometer")
    assert repo.get_array("img").voxel_size == (30.0, 4.0, 4.0)
    repo.change_version(first)
    assert (repo.get_array("img").voxel_size, repo.get_array("img").unit) == \
        ((40.0, 8.0, 8.0), "nanometer")
    for size, unit, match in [((1, 2), None, "voxel_size"), ((0, 1, 1), None, "positive"),
                              ((1, 1, 1), "nanometers", "singular"), ((1, 1, 1), "parsecs?",
                                                                     "unknown unit")]:
        with pytest.raises(InvalidInputError, match=match):
            repo.create_array("x", np.uint8, shape=(2, 2, 2), voxel_size=size, unit=unit)


def test_derived_view_is_read_only(served: ClientData, store: DicedStore) -> None:
    repo = store.create_repo("em")
    repo.create_array("img", np.uint8, shape=(4, 4))
    group = zarr.open_group(repo.zarr_store(), mode="a")
    with pytest.raises(InvalidInputError, match="read-only"):
        group.create_array(".ome/img/9", shape=(2,), dtype="u1")
    with httpx.Client(timeout=30) as http:
        index = http.get(served.zarr_url(served.v1))
        assert index.headers["content-type"].startswith("text/html")
        assert f'href="/zarr/em/{served.v1}/img"' in index.text
        assert http.get(served.zarr_url(served.v1) + ".ome/img/7/zarr.json").status_code == 404
        assert http.get(served.zarr_url(served.v1) + ".ome/nope/zarr.json").status_code == 404
