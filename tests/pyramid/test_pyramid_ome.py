"""A pyramid diced builds is what the OME-NGFF view serves: its levels are the datasets."""

from __future__ import annotations

import numpy as np
import zarr
from ome_zarr_models.v05.image import Image
from ome_zarr_models.v05.image_label import ImageLabel

from diced import DicedStore
from diced.zarr_views import OME_PREFIX


def test_levels_are_the_datasets_of_the_ome_image(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    data = np.random.default_rng(0).integers(0, 256, (8, 32, 32)).astype(np.uint8)
    em = repo.create_array("em", np.uint8, shape=data.shape, chunks=(4, 8, 8),
                           voxel_size=(40, 8, 8), unit="nanometer")
    em[...] = data
    em.build_pyramid(levels=2, factors=(1, 2, 2))
    repo.lock_node("pyramid")

    node = repo.zarr_store()
    group = zarr.open_group(node, path=f"{OME_PREFIX}/em", mode="r")
    multiscale = Image.from_zarr(group).attributes.ome.multiscales[0]
    assert [d.path for d in multiscale.datasets] == ["0", "1", "2"]
    assert [d.coordinateTransformations[0].scale for d in multiscale.datasets] == \
        [[40, 8, 8], [40, 16, 16], [40, 32, 32]]
    assert multiscale.datasets[2].coordinateTransformations[1].translation == [0, 12, 12]
    em = repo.get_array("em")
    for k in (1, 2):
        np.testing.assert_array_equal(group[str(k)][...], em.level(k)[...])
    # Levels are datasets of their array, never images of their own.
    assert sorted(zarr.open_group(node, path=OME_PREFIX, mode="r").group_keys()) == ["em"]
    assert repo.get_array("em.s2").zarr.attrs["diced"]["voxel_size"] == [40, 32, 32]


def test_levels_follow_a_new_voxel_size_and_labels_stay_labels(store: DicedStore) -> None:
    repo = store.create_repo("em", "")
    seg = repo.create_array("seg", np.uint64, shape=(16, 16, 16), chunks=(8, 8, 8),
                            islabel3D=True, pyramid=True)
    seg[...] = 7
    repo.lock_node("labels")
    repo.change_version(repo.create_branch("calibrated"))
    repo.get_array("seg").set_voxel_size((4, 4, 4), "nanometer")
    repo.lock_node("voxel size known")
    assert repo.get_array("seg.s1").zarr.attrs["diced"]["voxel_size"] == [8, 8, 8]
    group = zarr.open_group(repo.zarr_store(), path=f"{OME_PREFIX}/seg", mode="r")
    label = ImageLabel.from_zarr(group)
    assert [d.path for d in label.attributes.ome.multiscales[0].datasets] == ["0", "1"]
    assert (group["1"][...] == 7).all()
