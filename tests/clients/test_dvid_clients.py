"""The DVID clients ``dvidtools`` and ``dvision``, unmodified, against ``diced serve``.

Where a client cannot run here for a reason of its own, the same endpoint is called with
plain HTTP in exactly that client's request shape:

- dvision's ``DVIDDataInstance.__getitem__``/``__setitem__`` call ``np.fromstring`` and
  ``ndarray.tostring``, which NumPy 2 removed;
- dvision's ``create_data_instance`` posts through a requester that only talks to hosts named
  ``slowpoke1``/``slowpoke3`` (a hard-coded allow-list).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from _client_data import VOXEL_SIZE, ClientData

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def dvidtools(served: ClientData):  # type: ignore[no-untyped-def]
    import dvid

    dvid.setup(server=served.url, node=served.v2)
    dvid.config.segmentation = dvid.config.body_labels = "seg"  # the client's own settings
    dvid.get_segmentation_info.cache_clear()
    yield dvid
    dvid.get_segmentation_info.cache_clear()


def test_dvidtools_repos_and_branches(dvidtools, served: ClientData) -> None:  # type: ignore[no-untyped-def]
    projects = dvidtools.list_projects()
    row = projects[projects.Alias == "em"].iloc[0]
    assert row.Root == served.v1 and row.Description == "client test volume"
    assert set(row.DAG["Nodes"]) == {served.v1, served.v2, served.open}
    assert dvidtools.get_master_node(served.v1) == served.open
    assert dvidtools.get_branch_history(served.v2) == [served.open, served.v2, served.v1]


def test_dvidtools_instance_info(dvidtools, served: ClientData) -> None:  # type: ignore[no-untyped-def]
    info = dvidtools.get_segmentation_info()
    assert info["Base"]["TypeName"] == "labelblk"
    assert info["Extended"]["VoxelSize"] == list(reversed(VOXEL_SIZE))
    assert info["Extended"]["VoxelUnits"] == ["nanometers"] * 3
    assert info["Extended"]["BlockSize"] == [32, 32, 8]
    assert info["Extended"]["MaxPoint"] == [79, 63, 23]


def test_dvidtools_label_queries_equal_the_python_api(dvidtools, served: ClientData) -> None:  # type: ignore[no-untyped-def]
    points = np.array([[12, 9, 0], [55, 45, 23], [0, 0, 5], [49, 39, 11]])  # x, y, z
    ids = dvidtools.locs_to_ids(points, progress=False)
    seg = served.store.open_repo(uuid=served.v2, readonly=True).get_array("seg")
    assert ids.tolist() == [int(seg[z, y, x]) for x, y, z in points]
    assert ids.tolist() == [8, 2**40 + 3, 0, 8]
    # DVID's single-point query, as dvidtools' older helper sends it.
    assert requests.get(f"{served.url}/api/node/{served.v1}/seg/label/12_9_0",
                        params={"u": "me", "app": "dvidtools"}).json() == {"Label": 7}


def test_dvidtools_keyvalue_files(dvidtools, served: ClientData) -> None:  # type: ignore[no-untyped-def]
    assert dvidtools.get_assignment_status((10, 20, 3)) == {"checked": True}
    assert dvidtools.get_assignment_status((1, 2, 3)) is None


def test_dvidtools_edits_annotations_at_an_open_version(served_rw: ClientData) -> None:
    import dvid

    dvid.setup(server=served_rw.url, node=served_rw.open)
    dvid.config.body_labels = "seg"
    url = f"{served_rw.url}/api/node/{served_rw.open}/seg_annotations/key/7"
    assert requests.post(url, json={"name": "KC", "status": ""}).status_code == 200
    dvid.edit_annotation(7, {"status": "traced"}, verbose=False)
    assert dvid.get_annotation(7) == {"name": "KC", "status": "traced"}
    repo = served_rw.store.open_repo(uuid=served_rw.open)
    assert json.loads(repo.download_filedata("seg_annotations/7")) == \
        {"name": "KC", "status": "traced"}


def test_dvision_instances(served: ClientData) -> None:
    import dvision

    port = served.server.port
    img = dvision.DVIDDataInstance("127.0.0.1", port, served.v1, "img")
    assert img.dtype == np.uint8 and img.shape == (24, 64, 80)
    seg = dvision.DVIDDataInstance("127.0.0.1", port, served.v1, "seg")
    assert seg.dtype == np.uint64 and seg.shape == (24, 64, 80)
    # dvision's __getitem__ request (its np.fromstring needs NumPy < 2): raw .../nD, x first.
    url = f"{img.url_prefix}raw/0_1_2/30_20_4/10_5_2/nD"
    got = np.frombuffer(requests.get(url).content, np.uint8).reshape(4, 20, 30)
    np.testing.assert_array_equal(got, served.img_v1[2:6, 5:25, 10:40])


def test_dvision_creates_a_repo_and_writes(served_rw: ClientData) -> None:
    import dvision

    port = served_rw.server.port
    repository = dvision.DVIDConnection("127.0.0.1", port).create_repo("fresh", "made by dvision")
    root = repository.root_uuid
    assert served_rw.store.open_repo("fresh").uuid == root
    # dvision's create_data_instance request (its requester only posts to slowpoke hosts).
    made = requests.post(f"{served_rw.url}/api/repo/{root}/instance",
                         json={"typename": "uint8blk", "dataname": "grayscale"})
    assert made.status_code == 200 and "grayscale" in made.json()["result"]
    instance = dvision.DVIDDataInstance("127.0.0.1", port, root, "grayscale")
    assert instance.dtype == np.uint8 and instance.shape == (0, 0, 0)
    # dvision's __setitem__ request (its ndarray.tostring needs NumPy < 2).
    block = np.arange(4 * 8 * 16, dtype=np.uint8).reshape(4, 8, 16)
    posted = requests.post(f"{instance.url_prefix}raw/0_1_2/16_8_4/32_0_0", data=block.tobytes())
    assert posted.ok, posted.text
    array = served_rw.store.open_repo("fresh").get_array("grayscale")
    np.testing.assert_array_equal(array[0:4, 0:8, 32:48], block)
    instance._info_cache = None  # the client caches info; a new write changes the extents
    assert instance.shape == (64, 64, 64)  # DVID's extents: the written block of 64³
