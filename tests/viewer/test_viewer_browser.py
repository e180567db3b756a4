"""The viewer's pages in a real Debian Chromium, driven by Playwright.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``); never ``playwright install``.
With ``DICED_UPDATE_SCREENSHOTS=1`` the tests rewrite the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from _browser import needs_chromium, open_page
from _viewer_data import Served

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = needs_chromium


def _screenshot(page: Any, name: str) -> None:
    if os.environ.get("DICED_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _wait_plane(page: Any, prefix: str, canvas: str = "#slice") -> None:
    page.wait_for_function(
        "([sel, prefix]) => (document.querySelector(sel)?.dataset.loaded || '')"
        ".startsWith(prefix)", arg=[canvas, prefix])


def _plane_pixels(page: Any, canvas: str = "#slice-data") -> np.ndarray:
    width, height, data = page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
                      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                      return [c.width, c.height, Array.from(d.data)]; }""", canvas)
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)


def test_home_lists_repos(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/")
    rows = page.locator("tr.repo-row")
    assert rows.count() == 2
    assert "electron microscopy test volume" in rows.nth(0).inner_text()
    assert 'store.open_repo("em")' in rows.nth(0).inner_text()
    _screenshot(page, "home")


def test_dag_shows_nodes_and_edges(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em")
    assert page.locator("#dag .node").count() == 4
    assert page.locator("#dag .edge").count() == 3
    assert page.locator("#dag .node.leaf").count() == 2
    assert page.locator("#dag .node.locked").count() == 2
    assert page.locator(f'#dag .node.selected[data-uuid="{served.v3}"]').count() == 1
    assert "note: fix a corner" in page.locator(
        f'#dag .node[data-uuid="{served.v2}"] title').text_content()
    _screenshot(page, "repo")


def test_clicking_a_node_switches_version(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em")
    page.click(f'#dag .node[data-uuid="{served.root}"]')
    page.wait_for_selector(f'#version[data-uuid="{served.root}"]')
    assert served.root in page.url
    assert page.locator("#arrays tbody tr").count() == 7
    assert page.locator(".readme h1").inner_text() == "EM volume"
    assert page.locator("#files a").count() == 2
    assert page.locator("#log li").count() == 1
    _screenshot(page, "version")


def test_slice_pixels_equal_the_array(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em/{served.v2}/array/img")
    _wait_plane(page, "1|2|10,15,20")  # XY through the middle (z = 10)
    pixels = _plane_pixels(page)
    np.testing.assert_array_equal(pixels[..., 0], served.img_v2[10])
    page.click("#plane-XZ")
    _wait_plane(page, "0|2|")
    np.testing.assert_array_equal(_plane_pixels(page)[..., 0], served.img_v2[:, 15, :])
    page.eval_on_selector("#index-1", "(r) => { r.value = 4; "
                                      "r.dispatchEvent(new Event('input')); }")
    _wait_plane(page, "0|2|10,4,")
    np.testing.assert_array_equal(_plane_pixels(page)[..., 0], served.img_v2[:, 4, :])
    box = page.locator("#slice").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert "value=" in page.locator("#cursor-info").inner_text()
    page.click("#plane-XY")
    _wait_plane(page, "1|2|")
    _screenshot(page, "array")


def test_compare_mode_marks_changed_chunks(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em/{served.v2}/array/img")
    _wait_plane(page, "1|2|10,15,20")
    page.select_option("#compare-version", served.root)
    _wait_plane(page, f"1|2|10,15,20|{served.root}")
    assert page.locator("#view-other").is_visible()
    assert page.locator("li.changed-chunk").all_inner_texts() == [
        "chunk (1, 1, 2)", "chunk (1, 1, 3)"]
    np.testing.assert_array_equal(_plane_pixels(page, "#slice-other-data")[..., 0],
                                  served.img_root[10])
    _screenshot(page, "compare")
    page.eval_on_selector("#index-0", "(r) => { r.value = 3; "
                                      "r.dispatchEvent(new Event('input')); }")
    _wait_plane(page, "1|2|3,")
    assert page.locator("li.changed-chunk").count() == 0


def test_label_colours_and_nd_axes(page: Any, served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em/{served.root}/array/seg")
    _wait_plane(page, "1|2|")
    pixels = _plane_pixels(page)
    assert (pixels[0, 0, :3] == 0).all()
    assert pixels[10, 10, :3].min() >= 96 and pixels[25, 30, :3].min() >= 96
    assert (pixels[10, 10] != pixels[25, 30]).any()
    open_page(page, f"{served.url}/#/repo/em/{served.root}/array/cube4")
    _wait_plane(page, "2|3|")
    assert page.locator("#sliders input[type=range]").count() == 2
    page.select_option("#rows-axis", "0")
    _wait_plane(page, "0|3|")
    assert page.locator("#sliders input[type=range]").count() == 2


def test_lock_and_branch_from_the_page(page: Any, served_rw: Served) -> None:
    open_page(page, f"{served_rw.url}/#/repo/em/{served_rw.v3}")
    page.fill("#lock-message", "locked from the browser")
    _screenshot(page, "writes")
    page.click("#lock-button")
    page.wait_for_selector("#branch-form")
    repo = served_rw.store.open_repo(uuid=served_rw.v3)
    assert repo.locked and repo.node_record().lock_message == "locked from the browser"
    page.fill("#branch-note", "try something")
    page.fill("#branch-name", "experiment")
    page.click("#branch-button")
    page.wait_for_selector("#lock-form")
    page.wait_for_function("document.querySelectorAll('#dag .node').length === 5")
    nodes = served_rw.store.open_repo("em").list_nodes()
    made = [n for n in nodes if n.branch == "experiment"]
    assert len(made) == 1 and made[0].parents == (served_rw.v3,) and not made[0].locked
    assert made[0].uuid in page.url


def test_zooming_into_a_downsampled_plane_fetches_full_resolution(page: Any,
                                                                 served: Served) -> None:
    open_page(page, f"{served.url}/#/repo/em/{served.root}/array/big")
    _wait_plane(page, "0|1|")
    # The canvas is 512 pixels wide: every 5th of 2050 columns.
    assert page.eval_on_selector("#slice-data", "(c) => c.width") == 410
    box = page.locator("#slice").bounding_box()
    x, y = box["x"] + box["width"] / 3, box["y"] + box["height"] / 3
    page.mouse.move(x, y)
    for _ in range(8):
        page.mouse.wheel(0, -100)
    page.wait_for_function("document.querySelector('#slice').dataset.detail")
    columns = set()
    for dx in range(8):  # about 1.5 screen pixels per voxel at this zoom
        page.mouse.move(x + dx, y)
        fields = dict(part.split("=") for part in page.locator("#cursor-info").inner_text()
                      .split())
        row, col, value = int(fields["y"]), int(fields["x"]), int(fields["value"])
        assert value == (row * 7 + col * 3) % 256
        columns.add(col)
    # Consecutive columns: values come from the full-resolution window, not every 3rd voxel.
    assert any(c + 1 in columns for c in columns), columns
