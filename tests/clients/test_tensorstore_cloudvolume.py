"""TensorStore and cloud-volume read a version over HTTP (a regression test of what works)."""

from __future__ import annotations

import numpy as np
import pytest
from _client_data import VOXEL_SIZE, ClientData

from diced.zarr_views import OME_PREFIX


def test_tensorstore_reads_every_version(served: ClientData) -> None:
    import tensorstore as ts

    for version, img, seg in [(served.v1, served.img_v1, served.seg_v1),
                              (served.v2, served.img_v2, served.seg_v2)]:
        array = ts.open({"driver": "zarr3", "kvstore": served.zarr_url(version) + "img/"}).result()
        assert array.domain.labels == ("z", "y", "x")
        np.testing.assert_array_equal(array.read().result(), img)
        labels = ts.open({"driver": "zarr3",
                          "kvstore": served.zarr_url(version) + "seg/"}).result()
        np.testing.assert_array_equal(labels[4, 10:20, 40:60].read().result(),
                                      seg[4, 10:20, 40:60])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cloud_volume_reads_a_version_with_its_voxel_size(served: ClientData) -> None:
    from cloudvolume import CloudVolume

    volume = CloudVolume(f"zarr3://{served.zarr_url(served.v2)}{OME_PREFIX}/img",
                         fill_missing=True, progress=False)
    assert tuple(volume.resolution) == tuple(reversed(VOXEL_SIZE))  # x, y, z in nanometres
    data = np.asarray(volume[:, :, :])[..., 0]  # x, y, z, channel
    np.testing.assert_array_equal(data.transpose(2, 1, 0), served.img_v2)
