"""The slice view of an array with a pyramid reads the coarsest level that fills the plane.

Chunk reads are counted at the disk: a zoomed-out plane of a 1024² × 8 volume costs the
chunks of a 128² window, not the 256 chunks of its full-resolution plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from diced import DicedStore
from diced.backends import CachedObjectStore
from diced.testing import CountingObjectStore

SHAPE = (8, 1024, 1024)


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[tuple[httpx.Client, DicedStore, CountingObjectStore]]:
    location = str(tmp_path / "s.diced")
    with DicedStore(location) as store:
        repo = store.create_repo("em", "")
        data = np.random.default_rng(0).integers(0, 256, SHAPE).astype(np.uint8)
        # Equal chunks share their bytes: "other" differs from "flat" so no read is cached.
        for name, values in (("em", data), ("flat", data), ("other", data ^ 1)):
            repo.create_array(name, np.uint8, shape=SHAPE, chunks=(8, 64, 64))[...] = values
        repo.get_array("em").build_pyramid(factors=(1, 2, 2))
        repo.lock_node("volume")
    # Reopened with an empty cache: every chunk a request reads reaches the counter once.
    with DicedStore(location, cache=str(tmp_path / "cache")) as store:
        cached = store.backend
        assert isinstance(cached, CachedObjectStore)
        counting = CountingObjectStore(cached.inner)
        cached.inner = counting
        server = store.serve(port=0)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client, store, counting


def _plane(client: httpx.Client, counting: CountingObjectStore, array: str,
           **params: str) -> tuple[httpx.Response, int]:
    """GET a raw plane of ``array``; return it and how many chunks it read from the disk."""
    counting.reset()
    query = {"rows": "1", "cols": "2", "index": "4,0,0", "width": "128", "height": "128",
             **params}
    response = client.get(f"/api/node/:master/{array}/slice.raw", params=query)
    assert response.status_code == 200, response.text
    return response, sum(n for key, n in counting.reads.items() if "/blobs/" in key)


def test_a_zoomed_out_plane_reads_the_coarsest_level_that_fills_it(
        viewer: tuple[httpx.Client, DicedStore, CountingObjectStore]) -> None:
    client, store, counting = viewer
    em = store.open_repo("em").get_array("em")
    assert em.pyramid is not None and em.level(3).shape == (8, 128, 128)

    coarse, coarse_reads = _plane(client, counting, "em")
    assert coarse.headers["x-diced-shape"] == "128,128"
    assert coarse.headers["x-diced-step"] == "8,8"
    assert coarse.headers["x-diced-origin"] == "0,0"
    pixels = np.frombuffer(coarse.content, np.uint8).reshape(128, 128)
    np.testing.assert_array_equal(pixels, em.level(3)[4])

    _, window_reads = _plane(client, counting, "flat", region="0,128,0,128")
    _, strided_reads = _plane(client, counting, "other")
    assert coarse_reads == window_reads == 4  # one 128² window: 2 × 2 chunks of 64²
    assert strided_reads == 256  # every chunk the full-resolution plane crosses


def test_a_window_and_a_finer_request_use_finer_levels(
        viewer: tuple[httpx.Client, DicedStore, CountingObjectStore]) -> None:
    client, store, counting = viewer
    em = store.open_repo("em").get_array("em")
    # 512 pixels for 1024: level 1 (scale 2); a window of 256 shown at 128: level 1 too.
    response, _ = _plane(client, counting, "em", width="512", height="512")
    assert response.headers["x-diced-step"] == "2,2"
    np.testing.assert_array_equal(
        np.frombuffer(response.content, np.uint8).reshape(512, 512), em.level(1)[4])
    response, _ = _plane(client, counting, "em", region="300,556,100,356")
    assert response.headers["x-diced-origin"] == "300,100"
    assert response.headers["x-diced-step"] == "2,2"
    np.testing.assert_array_equal(
        np.frombuffer(response.content, np.uint8).reshape(128, 128),
        em.level(1)[4, 150:278, 50:178])
    # Full resolution asked for: level 0 itself.
    response, _ = _plane(client, counting, "em", region="10,20,30,40")
    assert response.headers["x-diced-step"] == "1,1"
