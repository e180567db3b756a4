"""The viewer tests' store: a small version graph, served on a free loopback port.

Graph of repo ``em`` (oldest first)::

    root (locked) ── v2 (locked, master) ── v3 (open, master leaf)
         └────────── alt (open, branch "alt")

``img`` changes between root and v2 in exactly the chunks listed in ``CHANGED_CHUNKS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diced_viewer import ViewerServer

from diced import DicedRepo, DicedStore

#: Chunk coordinates of ``img`` whose content differs between root and v2.
CHANGED_CHUNKS = [(1, 1, 2), (1, 1, 3)]


@dataclass
class Served:
    url: str
    store: DicedStore
    server: ViewerServer
    root: str
    v2: str
    v3: str
    alt: str
    img_root: np.ndarray
    img_v2: np.ndarray


def _img() -> np.ndarray:
    z, y, x = np.indices((20, 30, 40))
    return ((x * 5 + y * 3 + z * 7) % 256).astype(np.uint8)


def build(location: Path) -> tuple[DicedStore, dict[str, object]]:
    store = DicedStore(str(location))
    repo: DicedRepo = store.create_repo("em", "electron microscopy test volume")
    img = repo.create_array("img", np.uint8, shape=(20, 30, 40), chunks=(8, 8, 8))
    first = _img()
    img[...] = first
    seg = repo.create_array("seg", np.uint64, shape=(20, 30, 40), chunks=(8, 8, 8),
                            islabel3D=True)
    labels = np.zeros((20, 30, 40), np.uint64)
    labels[:, 5:20, 5:25] = 7
    labels[:, 20:, 25:] = 2**40 + 3
    seg[...] = labels
    repo.create_array("plane", np.uint16, shape=(50, 60), chunks=(16, 16))[...] = \
        np.arange(3000, dtype=np.uint16).reshape(50, 60)
    repo.create_array("cube4", np.float32, shape=(3, 4, 5, 6), chunks=(2, 2, 2, 2))[...] = \
        np.arange(360, dtype=np.float32).reshape(3, 4, 5, 6)
    rows, cols = np.indices((2050, 2050))
    repo.create_array("big", np.uint8, shape=(2050, 2050), chunks=(512, 512))[...] = \
        ((rows * 7 + cols * 3) % 256).astype(np.uint8)
    repo.create_array("sparse", np.uint16)[100:110, 200:210, 300:310] = 9  # unbounded
    repo.create_array("unwritten", np.uint8, dims=2)
    repo.upload_filedata("README.md", "# EM volume\n\nA *test* volume.\n\n<script>x</script>\n")
    repo.upload_filedata("notes/a b.txt", b"hello")
    repo.lock_node("initial import")
    root = repo.uuid
    alt = repo.create_branch("alternative segmentation", "alt")
    v2 = repo.create_branch("fix a corner")
    repo.change_version(v2)
    second = first.copy()
    second[8:16, 8:16, 16:32] = 255 - second[8:16, 8:16, 16:32]
    repo.get_array("img")[8:16, 8:16, 16:32] = second[8:16, 8:16, 16:32]
    repo.lock_node("corner fixed")
    v3 = repo.create_branch("work in progress")
    store.create_repo("empty", "nothing here yet")
    return store, {"root": root, "v2": v2, "v3": v3, "alt": alt, "img_root": first,
                   "img_v2": second}


def serve(location: Path, allow_writes: bool, **options: Any) -> Iterator[Served]:
    """Build the test store at ``location`` and serve it (with viewer ``options``) until the
    generator closes."""
    store, ids = build(location)
    server = store.serve(port=0, allow_writes=allow_writes, **options)
    try:
        yield Served(url=server.url, store=store, server=server, **ids)  # type: ignore[arg-type]
    finally:
        store.close()
    assert not server.running


def snapshot(store: DicedStore) -> dict[str, Any]:
    """Everything a client could change: each node of each repo, its arrays and files."""
    out: dict[str, Any] = {}
    for name, _ in store.list_repos():
        for node in store.open_repo(name, readonly=True).list_nodes():
            at = store.open_repo(uuid=node.uuid, readonly=True)
            out[node.uuid] = {
                "node": node,
                "arrays": {a: at.get_array(a).chunk_digests() for a, _ in at.list_instances()},
                "files": {f: hashlib.sha256(at.download_filedata(f)).hexdigest()
                          for f in at.list_files()},
            }
    return out
