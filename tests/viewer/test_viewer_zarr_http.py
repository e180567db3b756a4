"""Every version is plain zarr v3 over HTTP: zarr-python's HTTP store reads it unchanged."""

from __future__ import annotations

import httpx
import numpy as np
import zarr
from _viewer_data import Served
from zarr.storage import FsspecStore


def _open(served: Served, version: str, name: str) -> zarr.Array:
    store = FsspecStore.from_url(f"{served.url}/zarr/em/{version}/", read_only=True)
    return zarr.open_array(store, path=name, mode="r")


def test_zarr_python_reads_a_locked_version_identically(served: Served) -> None:
    root = _open(served, served.root, "img")
    np.testing.assert_array_equal(root[...], served.img_root)
    v2 = _open(served, served.v2[:12], "img")
    np.testing.assert_array_equal(v2[...], served.img_v2)
    seg = _open(served, served.root, "seg")
    mine = served.store.open_repo(uuid=served.root).get_array("seg")
    np.testing.assert_array_equal(seg[...], mine[...])
    assert seg.dtype == np.uint64 and seg.attrs["diced"]["islabel3D"] is True


def test_group_metadata_and_ranges(served: Served) -> None:
    base = f"{served.url}/zarr/em/{served.root}"
    with httpx.Client(timeout=30) as http:
        group = http.get(f"{base}/zarr.json")
        assert group.json()["node_type"] == "group"
        whole = http.get(f"{base}/img/c/0/0/0").content
        part = http.get(f"{base}/img/c/0/0/0", headers={"Range": "bytes=2-9"})
        assert part.status_code == 206 and part.content == whole[2:10]
        assert part.headers["content-range"] == f"bytes 2-9/{len(whole)}"
        suffix = http.get(f"{base}/img/c/0/0/0", headers={"Range": "bytes=-4"})
        assert suffix.content == whole[-4:]
        outside = http.get(f"{base}/img/c/0/0/0", headers={"Range": f"bytes={len(whole) + 5}-"})
        assert outside.status_code == 416 and outside.json()["status"] == 416
        assert outside.headers["content-range"] == f"bytes */{len(whole)}"
        assert http.options(f"{base}/img/zarr.json").status_code == 204
        assert http.get(f"{base}/img/c/99/0/0").status_code == 404  # fill value
        assert http.get(f"{base}/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert http.get(f"{base}/img/.zarray").status_code == 404
        assert http.get(f"{served.url}/zarr/em/:alt/img/zarr.json").status_code == 200
        assert http.get(f"{served.url}/zarr/nope/{served.root}/zarr.json").status_code == 404
        assert http.put(f"{base}/img/c/0/0/0", content=b"x").status_code == 405


def test_chunk_keys_with_wrong_coordinates_are_not_found_over_http(served: Served) -> None:
    # Each chunk has exactly one key: a key with too many or too few coordinates names no
    # chunk (it used to return another chunk's bytes).
    base = f"{served.url}/zarr/em/{served.root}/img"
    with httpx.Client(timeout=30) as http:
        assert http.get(f"{base}/c/0/0/0").status_code == 200
        for key in ["c/0/0/0/0", "c/0/0", "c/0", "c/00/0/0", "c/0/0/0/"]:
            assert http.get(f"{base}/{key}").status_code == 404, key
