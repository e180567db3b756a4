"""``diced serve --neuroglancer``: the pip package's neuroglancer, offline, in headless Chromium.

Every request the pages make is recorded: none may leave 127.0.0.1. The image layer must
draw (the canvas is not blank), and two versions that differ in one region must render
different pixels there and the same pixels elsewhere.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from _browser import needs_chromium, open_page
from diced_viewer import ViewerServer
from PIL import Image

from diced import DicedStore

pytestmark = needs_chromium
pytest.importorskip("neuroglancer")

#: Draw attempts before a canvas counts as blank (neuroglancer loads chunks asynchronously).
_MAX_DRAWS = 120


@dataclass
class NgServed:
    store: DicedStore
    server: ViewerServer
    v1: str
    v2: str


@pytest.fixture(scope="module")
def ng_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NgServed]:
    store = DicedStore(str(tmp_path_factory.mktemp("ng") / "store.diced"))
    repo = store.create_repo("em")
    _, y, x = np.indices((16, 64, 64))
    img = ((x * 2 + y) % 100 + 20).astype(np.uint8)
    repo.create_array("img", np.uint8, shape=img.shape, chunks=(8, 32, 32),
                      voxel_size=(40, 8, 8), unit="nanometer")[...] = img
    seg = np.zeros(img.shape, np.uint64)
    seg[:, 44:60, 44:60] = 3  # bottom right, away from the changed region
    repo.create_array("seg", np.uint64, shape=img.shape, chunks=(8, 32, 32), islabel3D=True,
                      voxel_size=(40, 8, 8), unit="nanometer")[...] = seg
    repo.lock_node("v1")
    v1 = repo.uuid
    repo.change_version(repo.create_branch("brighten the top left"))
    repo.get_array("img")[:, 0:32, 0:32] = 250  # the top-left quadrant of every xy plane
    repo.lock_node("v2")
    server = store.serve(port=0, neuroglancer_port=0)
    try:
        yield NgServed(store, server, v1, repo.uuid)
    finally:
        store.close()


def _record(page: Any) -> list[str]:
    seen: list[str] = []
    page.context.on("request", lambda request: seen.append(request.url))
    return seen


def _panel(page: Any) -> tuple[np.ndarray, dict[str, float]]:
    """A grey screenshot of neuroglancer's data panel once it shows data, and its box."""
    panel = page.locator(".neuroglancer-rendered-data-panel").first
    panel.wait_for()
    box = panel.bounding_box()
    for _ in range(_MAX_DRAWS):
        shot = np.asarray(Image.open(io.BytesIO(panel.screenshot())).convert("L"), float)
        if shot.std() > 15:
            return shot, box
        time.sleep(0.25)
    return shot, box


def _show(page: Any, served: NgServed, version: str) -> np.ndarray:
    page.goto(f"{served.server.url}/neuroglancer/em/{version}?layout=xy&array=img")
    assert urlsplit(page.url).netloc == urlsplit(served.server.neuroglancer.url).netloc
    shot, _ = _panel(page)
    return shot


def test_neuroglancer_renders_versions_offline(page: Any, ng_served: NgServed) -> None:
    requests = _record(page)
    first = _show(page, ng_served, ng_served.v1)
    assert first.std() > 15, "the image layer drew nothing"
    second = _show(page, ng_served, ng_served.v2)
    height, width = first.shape
    # The array's centre is the panel's centre; 64 voxels span 600 of its pixels.
    cy, cx, half = height // 2, width // 2, 300
    top_left = (slice(cy - half + 20, cy - 20), slice(cx - half + 20, cx - 20))
    bottom_left = (slice(cy + 20, cy + half - 20), slice(cx - half + 20, cx - 20))
    changed = np.abs(second[top_left] - first[top_left])
    same = np.abs(second[bottom_left] - first[bottom_left])
    assert changed.mean() > 40, "the changed region renders alike in both versions"
    assert same.mean() < 2, "an unchanged region renders differently"
    hosts = {urlsplit(url).hostname for url in requests if not url.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {sorted(hosts)}"
    assert any("/zarr/em/" in url and "/.ome/img/" in url for url in requests)


def test_compare_mode_adds_the_other_versions_layers(page: Any, ng_served: NgServed) -> None:
    requests = _record(page)
    page.goto(f"{ng_served.server.url}/neuroglancer/em/{ng_served.v1}?compare={ng_served.v2}")
    page.wait_for_selector(".neuroglancer-layer-item-label")
    page.wait_for_function("document.querySelectorAll('.neuroglancer-layer-item-label')"
                           ".length >= 4")
    names = page.locator(".neuroglancer-layer-item-label").all_inner_texts()
    short = ng_served.v2[:8]
    assert names == ["img", "seg", f"img @ {short}", f"seg @ {short}"]
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}


def test_viewer_pages_link_to_the_local_neuroglancer(page: Any, ng_served: NgServed) -> None:
    requests = _record(page)
    open_page(page, f"{ng_served.server.url}/#/repo/em/{ng_served.v1}")
    page.select_option("#neuroglancer-compare", ng_served.v2)
    with page.expect_popup() as popup:
        page.click("#neuroglancer-link")
    opened = popup.value
    opened.wait_for_load_state()
    assert opened.url.startswith(ng_served.server.neuroglancer.url)
    opened.wait_for_function("document.querySelectorAll('.neuroglancer-layer-item-label')"
                             ".length >= 4")
    open_page(page, f"{ng_served.server.url}/#/repo/em/{ng_served.v1}/array/img")
    link = page.locator("#neuroglancer-link")
    assert link.get_attribute("href") == f"/neuroglancer/em/{ng_served.v1}?array=img"
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}


def test_without_the_option_there_is_no_neuroglancer(page: Any, tmp_path: Path) -> None:
    with DicedStore(str(tmp_path / "s.diced")) as store:
        repo = store.create_repo("em")
        repo.create_array("img", np.uint8, shape=(2, 2, 2))
        server = store.serve(port=0)
        open_page(page, f"{server.url}/#/repo/em/{repo.uuid}")
        assert "--neuroglancer" in page.locator("#neuroglancer-hint").inner_text()
        response = page.request.get(f"{server.url}/neuroglancer/em/{repo.uuid}")
        assert response.status == 404 and "--neuroglancer" in response.json()["error"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serve_neuroglancer(tmp_path: Path) -> None:
    location = tmp_path / "s.diced"
    with DicedStore(str(location)) as store:
        repo = store.create_repo("em")
        repo.create_array("img", np.uint8, shape=(4, 4, 4))
        version = repo.uuid
    port, ng_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from diced.cli import main; main()",
                             "serve", str(location), "--port", str(port), "--neuroglancer",
                             "--neuroglancer-port", str(ng_port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/" in proc.stdout.readline()
        assert f"http://127.0.0.1:{ng_port}/" in proc.stdout.readline()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/api/server").json()["neuroglancer"] is True
            opened = http.get(f"/neuroglancer/em/{version}")
            assert opened.status_code == 303
            target = opened.headers["location"]
            assert target.startswith(f"http://127.0.0.1:{ng_port}/v/")
            assert httpx.get(target, timeout=30).status_code == 200
            assert http.get("/neuroglancer/em/nope").status_code == 404
            assert http.get(f"/neuroglancer/em/{version}?layout=bad").status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    assert code == 0
