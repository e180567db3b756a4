"""The client tests' store: an EM-like repo with two locked versions, served on loopback.

Repo ``em``: ``img`` (uint8, 24×64×80, voxel size 40×8×8 nm), ``seg`` (uint64 labels, same
grid), ``plane`` (2-D uint16), files ``README.md`` and ``bookmarks/10_20_3``. Version ``v2``
inverts ``img`` in ``REGION`` and relabels one body; ``open`` is an open child of ``v2``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diced_viewer import ViewerServer

from diced import DicedStore

#: The part of ``img`` (numpy order z, y, x) that differs between v1 and v2.
REGION = (slice(0, 24), slice(0, 32), slice(0, 40))
VOXEL_SIZE = (40.0, 8.0, 8.0)


@dataclass
class ClientData:
    url: str
    store: DicedStore
    server: ViewerServer
    v1: str
    v2: str
    open: str
    img_v1: np.ndarray
    img_v2: np.ndarray
    seg_v1: np.ndarray
    seg_v2: np.ndarray
    plane: np.ndarray

    def zarr_url(self, version: str) -> str:
        return f"{self.url}/zarr/em/{version}/"


def build(location: Path) -> tuple[DicedStore, dict[str, Any]]:
    store = DicedStore(str(location))
    repo = store.create_repo("em", "client test volume")
    z, y, x = np.indices((24, 64, 80))
    img = ((x * 3 + y * 2 + z) % 200 + 20).astype(np.uint8)
    repo.create_array("img", np.uint8, shape=img.shape, chunks=(8, 32, 32),
                      voxel_size=VOXEL_SIZE, unit="nanometer")[...] = img
    seg = np.zeros(img.shape, np.uint64)
    seg[:, 8:40, 10:50] = 7
    seg[:, 40:, 50:] = 2**40 + 3
    repo.create_array("seg", np.uint64, shape=img.shape, chunks=(8, 32, 32), islabel3D=True,
                      voxel_size=VOXEL_SIZE, unit="nanometer")[...] = seg
    plane = np.arange(50 * 60, dtype=np.uint16).reshape(50, 60)
    # Its own dimension names: xarray puts arrays sharing a name on one axis of one length.
    repo.create_array("plane", np.uint16, shape=(50, 60), chunks=(16, 16),
                      dimension_names=("row", "col"))[...] = plane
    repo.upload_filedata("README.md", "# test volume\n")
    repo.upload_filedata("bookmarks/10_20_3", json.dumps({"checked": True}))
    repo.lock_node("first import")
    v1 = repo.uuid
    repo.change_version(repo.create_branch("fix"))
    img2, seg2 = img.copy(), seg.copy()
    img2[REGION] = 255 - img2[REGION]
    seg2[seg2 == 7] = 8
    repo.get_array("img")[REGION] = img2[REGION]
    repo.get_array("seg")[...] = seg2
    repo.lock_node("inverted a corner, relabelled body 7")
    v2 = repo.uuid
    opened = repo.create_branch("work in progress")
    return store, {"v1": v1, "v2": v2, "open": opened, "img_v1": img, "img_v2": img2,
                   "seg_v1": seg, "seg_v2": seg2, "plane": plane}


def serve(location: Path, **options: Any) -> Iterator[ClientData]:
    """Build the store at ``location`` and serve it until the generator closes."""
    store, ids = build(location)
    server = store.serve(port=0, **options)
    try:
        yield ClientData(url=server.url, store=store, server=server, **ids)
    finally:
        store.close()
