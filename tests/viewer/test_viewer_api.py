"""The JSON and DVID API over real HTTP against a running viewer."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from _viewer_data import CHANGED_CHUNKS, Served
from diced_viewer._raw import MAX_RAW_BYTES
from PIL import Image

from diced.versioning import keys


@pytest.fixture(scope="module")
def http(served: Served) -> httpx.Client:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def test_repos_list_names_descriptions_and_counts(http: httpx.Client) -> None:
    repos = {r["name"]: r for r in http.get("/api/repos").json()}
    assert sorted(repos) == ["em", "empty"]
    assert repos["em"]["description"] == "electron microscopy test volume"
    assert repos["em"]["node_count"] == 4
    assert repos["empty"]["node_count"] == 1


def test_repo_info_has_the_dag(http: httpx.Client, served: Served) -> None:
    info = http.get("/api/repos/em").json()
    assert {n["uuid"] for n in info["nodes"]} == {served.root, served.v2, served.v3, served.alt}
    assert sorted(map(tuple, info["edges"])) == sorted(
        [(served.root, served.v2), (served.root, served.alt), (served.v2, served.v3)])
    leaves = {n["uuid"] for n in info["nodes"] if n["is_branch_leaf"]}
    assert leaves == {served.v3, served.alt}
    assert info["master_leaf"] == served.v3
    assert info["writable"] is False


def test_node_info_lists_arrays_files_readme_and_log(http: httpx.Client, served: Served) -> None:
    node = http.get(f"/api/node/{served.v2[:10]}").json()
    assert node["uuid"] == served.v2 and node["locked"] and node["repo"] == "em"
    arrays = {a["name"]: a for a in node["arrays"]}
    assert arrays["img"]["shape"] == [20, 30, 40] and arrays["img"]["chunks"] == [8, 8, 8]
    assert arrays["seg"]["islabel3D"] and arrays["seg"]["dtype"] == "uint64"
    assert arrays["img"]["stored_chunks"] == 3 * 4 * 5
    # Stored bytes are the compressed blobs (and index page) on disk, not chunks × size.
    repo = served.store.open_repo(uuid=served.v2)
    r = repo.repo_uuid
    sizes = {i.key: i.size for i in served.store.backend.list_info(keys.repo_prefix(r))}
    blobs = {keys.blob(r, d) for d in repo.get_array("img").chunk_digests().values()}
    blob_bytes = sum(sizes[k] for k in blobs)
    page_bytes = arrays["img"]["stored_bytes"] - blob_bytes
    assert page_bytes in {size for key, size in sizes.items() if "/pages/" in key}
    changed = {keys.blob(r, repo.get_array("img").chunk_digests()[c]) for c in CHANGED_CHUNKS}
    assert arrays["img"]["unique_bytes"] == sum(sizes[k] for k in changed) + page_bytes
    assert arrays["img"]["stored_bytes"] < 20 * 30 * 40
    assert node["files"] == ["README.md", "notes/a b.txt"]
    assert "<h1>EM volume</h1>" in node["readme_html"]
    assert "<script>" not in node["readme_html"]  # raw HTML in a README is escaped
    assert [e["message"] for e in node["log"]] == ["initial import", "corner fixed"]


def test_files_list_and_download(http: httpx.Client, served: Served) -> None:
    assert http.get(f"/api/node/{served.root}/.files/keys").json() == ["README.md",
                                                                      "notes/a b.txt"]
    response = http.get(f"/api/node/{served.root}/.files/key/notes/a%20b.txt")
    assert response.status_code == 200 and response.content == b"hello"
    missing = http.get(f"/api/node/{served.root}/.files/key/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_dvid_raw_get_is_little_endian_x_fastest(http: httpx.Client, served: Served) -> None:
    # size and offset are x, y, z; the bytes are C order of [z][y][x].
    response = http.get(f"/api/node/{served.v2}/img/raw/0_1_2/7_5_3/30_10_6")
    assert response.headers["content-type"] == "application/octet-stream"
    got = np.frombuffer(response.content, np.uint8).reshape(3, 5, 7)
    np.testing.assert_array_equal(got, served.img_v2[6:9, 10:15, 30:37])
    seg = http.get(f"/api/node/{served.root}/seg/raw/0_1_2/7_1_1/24_19_0").content
    assert np.frombuffer(seg, "<u8").tolist() == [7, 0, 0, 0, 0, 0, 0]
    seg = http.get(f"/api/node/{served.root}/seg/raw/0_1_2/1_1_1/30_25_0").content
    assert np.frombuffer(seg, "<u8").tolist() == [2**40 + 3]
    plane = http.get(f"/api/node/{served.root}/plane/raw/0_1/3_2/4_5").content
    assert np.frombuffer(plane, "<u2").reshape(2, 3).tolist() == \
        (np.arange(3000).reshape(50, 60)[5:7, 4:7]).tolist()


def test_dvid_info(http: httpx.Client, served: Served) -> None:
    info = http.get(f"/api/node/{served.root}/img/info").json()
    assert [a["Label"] for a in info["Extended"]["Axes"]] == ["X", "Y", "Z"]
    assert [a["Size"] for a in info["Extended"]["Axes"]] == [40, 30, 20]
    assert info["Base"]["Name"] == "img"


@pytest.mark.parametrize(("path", "status"), [
    ("/api/node/{v2}/img/raw/0_1_2/100000_100000_100000/0_0_0", 413),
    ("/api/node/{v2}/img/raw/0_1_2/7_5_3/38_0_0", 400),
    ("/api/node/{v2}/img/raw/0_1/7_5/0_0", 400),
    ("/api/node/{v2}/img/raw/0_1_2/a_b_c/0_0_0", 400),
    ("/api/node/{v2}/nope/info", 404),
    ("/api/node/{v2}/..%2F..%2Fetc/info", 404),
    ("/api/node/ffffffffffff/img/info", 404),
    ("/api/repos/..", 404),
    ("/api/node/{v2}/img/slice.png?width=100000", 400),
    ("/api/node/{v2}/img/slice.png?rows=0&cols=0", 400),
    ("/api/node/{v2}/img/slice.png?index=1,2", 400),
    ("/api/nothing", 404),
])
def test_errors_are_json(http: httpx.Client, served: Served, path: str, status: int) -> None:
    response = http.get(path.format(v2=served.v2))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["error"]
    assert "Traceback" not in response.text


def test_oversized_raw_request_names_the_limit(http: httpx.Client, served: Served) -> None:
    response = http.get(f"/api/node/{served.v2}/img/raw/0_1_2/100000_100000_100000/0_0_0")
    assert response.status_code == 413 and str(MAX_RAW_BYTES) in response.json()["error"]


def test_writes_refused_when_read_only(http: httpx.Client, served: Served) -> None:
    for path, kwargs in [(f"/api/node/{served.v3}/lock", {"json": {"message": "x"}}),
                         (f"/api/node/{served.v2}/branch", {"json": {"message": "x"}}),
                         (f"/api/node/{served.v3}/img/raw/0_1_2/1_1_1/0_0_0",
                          {"content": b"\x01"})]:
        response = http.post(path, **kwargs)
        assert response.status_code in (403, 405), response.text
        assert "allow-writes" in response.text or response.status_code == 405
    assert not served.store.open_repo(uuid=served.v3).locked


def test_png_slice_equals_the_plane(http: httpx.Client, served: Served) -> None:
    response = http.get(f"/api/node/{served.v2}/img/slice.png",
                        params={"rows": 1, "cols": 2, "index": "12,0,0"})
    assert response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(image, served.img_v2[12])
    xz = np.asarray(Image.open(io.BytesIO(http.get(
        f"/api/node/{served.v2}/img/slice.png", params={"rows": 0, "cols": 2,
                                                        "index": "0,9,0"}).content)))
    np.testing.assert_array_equal(xz, served.img_v2[:, 9, :])


def test_png_slice_is_downsampled_to_the_requested_size(http: httpx.Client,
                                                       served: Served) -> None:
    response = http.get(f"/api/node/{served.v2}/img/slice.png",
                        params={"index": "3,0,0", "width": 10, "height": 10})
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (10, 10)
    assert response.headers["x-diced-step"] == "3,4"
    np.testing.assert_array_equal(image, served.img_v2[3, ::3, ::4])


def test_label_png_colours_ids(http: httpx.Client, served: Served) -> None:
    image = np.asarray(Image.open(io.BytesIO(http.get(
        f"/api/node/{served.root}/seg/slice.png", params={"index": "4,0,0"}).content)))
    assert image.shape == (30, 40, 3)
    assert (image[0, 0] == 0).all()
    assert len({tuple(image[10, 10]), tuple(image[25, 30]), (0, 0, 0)}) == 3


def test_raw_slice_of_an_nd_array(http: httpx.Client, served: Served) -> None:
    response = http.get(f"/api/node/{served.root}/cube4/slice.raw",
                        params={"rows": 0, "cols": 3, "index": "0,2,4,0"})
    got = np.frombuffer(response.content, "<f4").reshape(3, 6)
    np.testing.assert_array_equal(got, np.arange(360, dtype=np.float32).reshape(3, 4, 5, 6)
                                  [:, 2, 4, :])
    assert response.headers["x-diced-shape"] == "3,6"


def test_diff_lists_the_changed_chunks(http: httpx.Client, served: Served) -> None:
    diff = http.get(f"/api/node/{served.v2}/img/diff", params={"other": served.root}).json()
    assert [tuple(c) for c in diff["changed"]] == CHANGED_CHUNKS
    same = http.get(f"/api/node/{served.v3}/img/diff", params={"other": served.v2}).json()
    assert same["changed"] == []


def test_openapi_and_docs_pages(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/node/{uuid}/{array}/raw/{dims}/{size}/{offset}" in spec["paths"]
    assert "/api/node/{uuid}/lock" not in spec["paths"]  # read-only server
    docs = http.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text
    home = http.get("/")
    assert "/static/app.js" in home.text and "http" not in home.text.split("<body>")[1]


def test_unbounded_arrays_show_their_extents(http: httpx.Client, served: Served) -> None:
    response = http.get(f"/api/node/{served.root}/sparse/slice.raw", params={"index": "105,0,0"})
    assert response.headers["x-diced-origin"] == "192,256"
    plane = np.frombuffer(response.content, "<u2").reshape(64, 64)
    expected = np.zeros((64, 64), np.uint16)
    expected[8:18, 44:54] = 9
    np.testing.assert_array_equal(plane, expected)
    empty = http.get(f"/api/node/{served.root}/unwritten/slice.png")
    assert empty.status_code == 404 and "nothing written" in empty.json()["error"]


def test_chunk_digests_differ_exactly_where_content_changed(served: Served) -> None:
    root = served.store.open_repo(uuid=served.root).get_array("img").chunk_digests()
    v2 = served.store.open_repo(uuid=served.v2).get_array("img").chunk_digests()
    assert len(root) == len(v2) == 3 * 4 * 5
    assert sorted(k for k in root if root[k] != v2[k]) == CHANGED_CHUNKS
    assert served.store.open_repo(uuid=served.root).get_array("unwritten").chunk_digests() == {}


def test_a_region_of_a_plane_at_full_resolution(http: httpx.Client, served: Served) -> None:
    response = http.get(f"/api/node/{served.v2}/img/slice.raw",
                        params={"index": "5,0,0", "region": "3,9,-5,7", "width": 64,
                                "height": 64})
    assert response.headers["x-diced-origin"] == "3,0"
    assert response.headers["x-diced-step"] == "1,1"
    got = np.frombuffer(response.content, np.uint8).reshape(6, 7)
    np.testing.assert_array_equal(got, served.img_v2[5, 3:9, 0:7])
    outside = http.get(f"/api/node/{served.v2}/img/slice.raw",
                       params={"index": "5,0,0", "region": "50,60,0,7"})
    assert outside.status_code == 404
    bad = http.get(f"/api/node/{served.v2}/img/slice.raw", params={"region": "1,2"})
    assert bad.status_code == 400
