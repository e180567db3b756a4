"""Every DVID endpoint diced serves, in DVID's documented request and response shapes."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import requests
from _client_data import ClientData
from diced_viewer._dvid_kv import decode_key_values, encode_key_values
from PIL import Image


def _api(data: ClientData, path: str) -> str:
    return f"{data.url}/api/{path}"


def test_server_endpoints(served: ClientData) -> None:
    info = requests.get(_api(served, "server/info")).json()
    assert info["Mode"] == "read only" and info["DVID Version"].startswith("diced")
    assert requests.get(_api(served, "server/types")).json().keys() == \
        {"uint8blk", "labelblk", "uint16blk", "keyvalue"}
    assert "uint64blk" in requests.get(_api(served, "server/compiled-types")).json()


def test_repo_and_node_endpoints(served: ClientData) -> None:
    repos = requests.get(_api(served, "repos/info")).json()
    repo = repos[served.v1]
    assert repo["Alias"] == "em" and repo["Root"] == served.v1
    assert repo["DataInstances"]["img"]["Base"]["TypeName"] == "uint8blk"
    assert repo["DataInstances"]["bookmarks"]["Base"]["TypeName"] == "keyvalue"
    nodes = repo["DAG"]["Nodes"]
    assert nodes[served.v2]["Parents"] == [nodes[served.v1]["VersionID"]]
    assert nodes[served.v1]["Branch"] == "" and nodes[served.open]["Locked"] is False
    assert requests.get(_api(served, f"repo/{served.v2[:10]}/info")).json()["Root"] == served.v1
    assert requests.head(_api(served, f"repo/{served.v2}")).status_code == 200
    assert requests.get(_api(served, f"repo/{served.v1}/branch-versions/master")).json() == \
        [served.open, served.v2, served.v1]
    assert requests.get(_api(served, f"node/{served.v2}/log")).json()["log"][-1].endswith(
        "commit: inverted a corner, relabelled body 7")
    assert requests.get(_api(served, f"node/{served.v2}/note")).json() == {"note": "fix"}
    assert requests.get(_api(served, f"node/{served.v2}/status")).json() == {"Locked": True}
    assert requests.get(_api(served, f"node/{served.open}/commit")).json() == {"Locked": False}
    info = requests.get(_api(served, f"node/{served.v1}/img/info")).json()
    assert info["Extended"]["VoxelSize"] == [8, 8, 40]
    assert info["Extended"]["MinPoint"] == [0, 0, 0] and info["Extents"]["MaxPoint"] == \
        [79, 63, 23]
    assert requests.get(_api(served, f"node/{served.v1}/.files/info")).json()["Base"][
        "TypeName"] == "keyvalue"


def test_raw_subvolumes_and_slices(served: ClientData) -> None:
    node = _api(served, f"node/{served.v2}/img")
    img = served.img_v2
    for suffix in ("", "/nD"):
        sub = requests.get(f"{node}/raw/0_1_2/30_20_4/10_5_2{suffix}")
        np.testing.assert_array_equal(
            np.frombuffer(sub.content, np.uint8).reshape(4, 20, 30), img[2:6, 5:25, 10:40])
    for dims, size, offset, expected in [
            ("0_1", "30_20", "10_5_2", img[2, 5:25, 10:40]),
            ("xy", "30_20", "10_5_2", img[2, 5:25, 10:40]),
            ("0_2", "30_6", "10_5_2", img[2:8, 5, 10:40]),
            ("1_2", "20_6", "10_5_2", img[2:8, 5:25, 10])]:
        png = requests.get(f"{node}/raw/{dims}/{size}/{offset}")
        assert png.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.content))), expected)
        values = requests.get(f"{node}/raw/{dims}/{size}/{offset}/nD").content
        np.testing.assert_array_equal(np.frombuffer(values, np.uint8).reshape(expected.shape),
                                      expected)
    for fmt in ("jpg", "jpg:80"):
        jpg = requests.get(f"{node}/raw/0_1/30_20/10_5_2/{fmt}")
        assert jpg.headers["content-type"] == "image/jpeg"
        decoded = np.asarray(Image.open(io.BytesIO(jpg.content)), dtype=float)
        assert np.abs(decoded - img[2, 5:25, 10:40]).mean() < 12
    # A 2-D array's whole-array dims give values (diced's raw reads); /png asks for an image.
    plane = requests.get(_api(served, f"node/{served.v1}/plane/raw/0_1/6_4/2_3/png"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(plane.content))),
                                  served.plane[3:7, 2:8])
    labels = requests.get(_api(served, f"node/{served.v1}/seg/raw/0_1/5_3/48_38_4/nD")).content
    np.testing.assert_array_equal(np.frombuffer(labels, "<u8").reshape(3, 5),
                                  served.seg_v1[4, 38:41, 48:53])


def test_isotropic_slices(served: ClientData) -> None:
    node = _api(served, f"node/{served.v1}/img")
    # x-z slice: z voxels are 40 nm, x voxels 8 nm, so each z row is repeated 5 times.
    values = requests.get(f"{node}/isotropic/0_2/30_6/10_5_2/nD").content
    got = np.frombuffer(values, np.uint8).reshape(30, 30)
    np.testing.assert_array_equal(got, np.repeat(served.img_v1[2:8, 5, 10:40], 5, axis=0))
    xy = requests.get(f"{node}/isotropic/0_1/30_20/10_5_2/png")
    assert Image.open(io.BytesIO(xy.content)).size == (30, 20)
    assert requests.get(f"{node}/isotropic/0_1_2/4_4_4/0_0_0").status_code == 400


def test_labels(served: ClientData) -> None:
    base = _api(served, f"node/{served.v1}/seg")
    assert requests.get(f"{base}/label/12_9_0").json() == {"Label": 7}
    points = [[12, 9, 0], [55, 45, 23], [0, 0, 0]]
    assert requests.get(f"{base}/labels", data=json.dumps(points)).json() == [7, 2**40 + 3, 0]
    assert requests.post(f"{base}/labels", json=points).json() == [7, 2**40 + 3, 0]
    assert requests.get(_api(served, f"node/{served.v1}/img/label/1_1_1")).status_code == 400
    assert requests.get(f"{base}/label/1_1").status_code == 400
    assert requests.get(f"{base}/labels", data="[[999, 0, 0]]").status_code == 400


@pytest.mark.parametrize(("path", "status"), [
    ("img/raw/0_1/30_20/10_5_2/gif", 400),
    ("img/raw/0_1_2/3_3_3/0_0_0/png", 400),
    ("img/raw/0_0/3_3/0_0_0", 400),
    ("img/raw/0_1/3_3/0_0", 400),
    ("seg/raw/0_1/3_3/0_0_0/png", 400),
    ("img/raw/0_1/3_3/79_0_0", 400),
    ("img/raw/0_1/30_20/10_5_2/jpg:0", 400),
    ("nope/raw/0_1/3_3/0_0_0", 404),
    ("bookmarks/key/nothing", 404),
])
def test_bad_requests_are_json_errors(served: ClientData, path: str, status: int) -> None:
    response = requests.get(_api(served, f"node/{served.v1}/{path}"))
    assert response.status_code == status, response.text
    assert response.json()["status"] == status


def test_keyvalue_reads(served: ClientData) -> None:
    files = _api(served, f"node/{served.v1}/.files")
    assert requests.get(f"{files}/keys").json() == ["README.md", "bookmarks/10_20_3"]
    marks = _api(served, f"node/{served.v1}/bookmarks")
    assert requests.get(f"{marks}/keys").json() == ["10_20_3"]
    assert requests.get(f"{marks}/keyrange/0/2").json() == ["10_20_3"]
    assert requests.get(f"{marks}/keyrange/2/9").json() == []
    assert requests.get(f"{marks}/keyrangevalues/0/2?json=true").json() == \
        {"10_20_3": {"checked": True}}
    protobuf = requests.get(f"{marks}/keyrangevalues/0/2").content
    assert decode_key_values(protobuf) == [("10_20_3", b'{"checked": true}')]
    packed = requests.get(f"{files}/keyrangevalues/A/Z?tar=true").content
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        assert tar.getnames() == ["README.md"]
    wanted = requests.get(f"{files}/keyvalues?json=true",
                          data=json.dumps(["bookmarks/10_20_3", "missing"])).json()
    assert wanted == {"bookmarks/10_20_3": {"checked": True}, "missing": {}}
    keys_message = b"\x0a\x09README.md"  # Keys{keys: ["README.md"]}
    assert decode_key_values(requests.get(f"{files}/keyvalues", data=keys_message).content) == \
        [("README.md", b"# test volume\n")]
    assert requests.head(f"{marks}/key/10_20_3").status_code == 200
    assert requests.get(f"{files}/key/README.md").content == b"# test volume\n"
    assert requests.post(f"{marks}/key/x", data=b"1").status_code == 403  # read-only server


def test_keyvalue_writes(served_rw: ClientData) -> None:
    kv = _api(served_rw, f"node/{served_rw.open}/notes")
    assert requests.post(f"{kv}/key/a", data=b"alpha").status_code == 200
    # Programs may label keyvalue bodies with any type; DVID stores them as they are.
    text = requests.post(f"{kv}/key/b", data=b"beta", headers={"Content-Type": "text/plain"})
    assert text.status_code == 200, text.text
    # A web page may not (that is what a cross-site form would send).
    page = requests.post(f"{kv}/key/c", data=b"x", headers={
        "Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert page.status_code == 403
    posted = requests.post(f"{kv}/keyvalues", data=encode_key_values([("c", b"gamma"),
                                                                      ("d", b"delta")]))
    assert posted.status_code == 200
    repo = served_rw.store.open_repo(uuid=served_rw.open)
    assert [repo.download_filedata(f"notes/{k}") for k in "abcd"] == \
        [b"alpha", b"beta", b"gamma", b"delta"]
    assert requests.delete(f"{kv}/key/a").status_code == 200
    assert requests.get(f"{kv}/keys").json() == ["b", "c", "d"]
    locked = requests.post(_api(served_rw, f"node/{served_rw.v1}/notes/key/z"), data=b"1")
    assert locked.status_code == 409
    clash = requests.post(_api(served_rw, f"node/{served_rw.open}/img/key/z"), data=b"1")
    assert clash.status_code == 400


def test_versioning_writes(served_rw: ClientData) -> None:
    made = requests.post(_api(served_rw, "repos"), json={"alias": "new", "description": "d"})
    root = made.json()["root"]
    assert served_rw.store.open_repo("new").uuid == root
    assert requests.post(_api(served_rw, "repos"), json={"description": "no alias"}
                         ).status_code == 400
    committed = requests.post(_api(served_rw, f"node/{root}/commit"),
                              json={"note": "empty start", "log": ["made by a test"]})
    assert committed.json() == {"committed": root}
    branch = requests.post(_api(served_rw, f"node/{root}/branch"),
                           json={"branch": "proofreading", "note": "try"})
    child = branch.json()["child"]
    assert served_rw.store.open_repo(uuid=child).node_record().branch == "proofreading"
    assert requests.post(_api(served_rw, f"node/{root}/newversion"),
                         json={"note": "next"}).status_code == 200
    instance = requests.post(_api(served_rw, f"repo/{child}/instance"),
                             json={"typename": "labelblk", "dataname": "labels",
                                   "BlockSize": "32,32,32", "VoxelSize": "8,8,40",
                                   "VoxelUnits": "nanometers"})
    assert instance.status_code == 200, instance.text
    labels = served_rw.store.open_repo(uuid=child).get_array("labels")
    assert labels.islabel3D and labels.chunks == (32, 32, 32)
    assert labels.voxel_size == (40.0, 8.0, 8.0) and labels.unit == "nanometer"
    assert requests.post(_api(served_rw, f"repo/{child}/instance"),
                         json={"typename": "keyvalue", "dataname": "kv"}).status_code == 200
    assert requests.post(_api(served_rw, f"repo/{child}/instance"),
                         json={"typename": "labelmap", "dataname": "x"}).status_code == 400
    assert requests.post(_api(served_rw, f"node/{root}/commit"), json={}).status_code == 409
