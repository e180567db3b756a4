"""OME-NGFF 0.5 readers open every array of a version: ome-zarr-py, bioio, ome-zarr-models."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from _client_data import VOXEL_SIZE, ClientData
from ome_zarr_models.v05.image import Image
from ome_zarr_models.v05.image_label import ImageLabel
from zarr.storage import FsspecStore

from diced import DicedStore
from diced import zarr_ome as ome
from diced.zarr_views import OME_PREFIX


def test_ome_zarr_models_validate_every_group_locally(served: ClientData) -> None:
    repo = served.store.open_repo(uuid=served.v1, readonly=True)
    node_store = repo.zarr_store()
    image = Image.from_zarr(zarr.open_group(node_store, path=f"{OME_PREFIX}/img", mode="r"))
    multiscale = image.attributes.ome.multiscales[0]
    assert [a.name for a in multiscale.axes] == ["z", "y", "x"]
    assert {a.unit for a in multiscale.axes} == {"nanometer"}
    assert multiscale.datasets[0].coordinateTransformations[0].scale == list(VOXEL_SIZE)
    label = ImageLabel.from_zarr(zarr.open_group(node_store, path=f"{OME_PREFIX}/seg",
                                                 mode="r"))
    assert label.attributes.ome.image_label is not None
    plane = Image.from_zarr(zarr.open_group(node_store, path=f"{OME_PREFIX}/plane", mode="r"))
    assert [a.name for a in plane.attributes.ome.multiscales[0].axes] == ["row", "col"]
    assert sorted(zarr.open_group(node_store, path=OME_PREFIX, mode="r").group_keys()) == \
        ["img", "plane", "seg"]


def test_ome_zarr_models_validate_over_http(served: ClientData) -> None:
    store = FsspecStore.from_url(served.zarr_url(served.v2), read_only=True)
    image = Image.from_zarr(zarr.open_group(store, path=f"{OME_PREFIX}/img", mode="r"))
    assert image.attributes.ome.version == "0.5"
    np.testing.assert_array_equal(
        zarr.open_array(store, path=f"{OME_PREFIX}/img/0", mode="r")[...], served.img_v2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_ome_zarr_py_reads_an_array_over_http(served: ClientData) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(served.zarr_url(served.v1) + f"{OME_PREFIX}/img")
    assert location is not None
    node = next(iter(Reader(location)()))
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == list(VOXEL_SIZE)
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    np.testing.assert_array_equal(np.asarray(node.data[0]), served.img_v1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bioio_reads_physical_pixel_sizes_over_http(served: ClientData) -> None:
    import bioio_ome_zarr
    from bioio import BioImage

    image = BioImage(served.zarr_url(served.v2) + f"{OME_PREFIX}/img",
                     reader=bioio_ome_zarr.Reader)
    sizes = image.physical_pixel_sizes
    assert (sizes.Z, sizes.Y, sizes.X) == VOXEL_SIZE
    np.testing.assert_array_equal(image.get_image_data("ZYX"), served.img_v2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_ome_zarr_py_reads_an_array_locally(served: ClientData) -> None:
    from ome_zarr.io import ZarrLocation
    from ome_zarr.reader import Reader

    from diced.zarr_fsspec import VersionFileSystem

    node_store = served.store.open_repo(uuid=served.v2, readonly=True).zarr_store()
    fs = VersionFileSystem(node_store)
    location = ZarrLocation(FsspecStore.from_mapper(fs.get_mapper(f"{OME_PREFIX}/img"),
                                                    read_only=True))
    node = next(iter(Reader(location)()))
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == list(VOXEL_SIZE)
    np.testing.assert_array_equal(np.asarray(node.data[0]), served.img_v2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bioio_reads_physical_pixel_sizes_locally(served: ClientData) -> None:
    import bioio_ome_zarr
    from bioio import BioImage

    import diced.zarr_fsspec  # noqa: F401  (registers the diced-version protocol)

    node_store = served.store.open_repo(uuid=served.v1, readonly=True).zarr_store()
    image = BioImage(f"diced-version://{OME_PREFIX}/seg", reader=bioio_ome_zarr.Reader,
                     fs_kwargs={"node_store": node_store})
    sizes = image.physical_pixel_sizes
    assert (sizes.Z, sizes.Y, sizes.X) == VOXEL_SIZE
    np.testing.assert_array_equal(image.get_image_data("ZYX"), served.seg_v1)


def test_version_file_system_is_read_only_and_lists(served: ClientData) -> None:
    from diced.zarr_fsspec import VersionFileSystem

    fs = VersionFileSystem(served.store.open_repo(uuid=served.v1, readonly=True).zarr_store())
    assert {"img", "seg", "plane", ".ome", "zarr.json"} <= set(fs.ls("", detail=False))
    assert fs.ls(".ome/img", detail=False) == [".ome/img/zarr.json", ".ome/img/0"]
    assert fs.info("img/zarr.json")["type"] == "file"
    assert fs.info(".ome")["type"] == "directory"
    with pytest.raises(FileNotFoundError):
        fs.info("nothing/here")
    with pytest.raises(PermissionError):
        fs.open("img/zarr.json", "wb")


def test_pyramid_levels_become_datasets(store: DicedStore) -> None:
    """The arrays a pyramid description names are the OME group's coarser datasets."""
    repo = store.create_repo("em")
    base = repo.create_array("img", np.uint8, shape=(8, 16, 16), chunks=(4, 8, 8),
                             voxel_size=(40, 8, 8), unit="nanometer")
    level = repo.create_array("img_s1", np.uint8, shape=(8, 8, 8), chunks=(4, 8, 8))
    level.zarr.attrs["diced"] = {**level.zarr.attrs["diced"], "pyramid_of": "img"}
    base.zarr.attrs["diced"] = {**base.zarr.attrs["diced"], "pyramid": {
        "levels": [{"array": "img_s1", "factors": [1, 2, 2]}]}}
    level[...] = 9
    group = zarr.open_group(repo.zarr_store(), path=f"{OME_PREFIX}/img", mode="r")
    datasets = Image.from_zarr(group).attributes.ome.multiscales[0].datasets
    assert [d.path for d in datasets] == ["0", "1"]
    transforms = datasets[1].coordinateTransformations
    assert transforms[0].scale == [40, 16, 16]
    assert transforms[1].translation == [0, 4, 4]
    assert (group["1"][...] == 9).all()
    # A level is a dataset of its base array, not an image of its own.
    assert sorted(zarr.open_group(repo.zarr_store(), path=OME_PREFIX, mode="r").group_keys()) \
        == ["img"]
    assert ome.pyramid_levels(base.zarr.metadata.to_dict()) == [
        ome.PyramidLevel("img_s1", (1.0, 2.0, 2.0))]


def test_arrays_outside_ome_rules_have_no_group(store: DicedStore) -> None:
    repo = store.create_repo("em")
    repo.create_array("line", np.uint8, shape=(10,))
    repo.create_array("six", np.uint8, shape=(2,) * 6)
    repo.create_array("tzyx", np.uint8, shape=(2, 3, 4, 5), dimension_names=("t", "z", "y",
                                                                            "x"))
    group = zarr.open_group(repo.zarr_store(), path=OME_PREFIX, mode="r")
    assert list(group.group_keys()) == ["tzyx"]
    axes = Image.from_zarr(group["tzyx"]).attributes.ome.multiscales[0].axes
    assert [a.type for a in axes] == ["time", "space", "space", "space"]
