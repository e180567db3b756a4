"""Version control over HTTP and in the browser: tags in repo info, the diff and conflict
routes, merges (diced's route and DVID's ``POST /api/repo/{uuid}/merge``), merge nodes and
tag badges in the DAG, the compare mode on the repo's diff, and a merge's conflicts.

Repo ``seg`` (oldest first)::

    base (locked, tag "v1") ─┬─ left  (locked) ─┬─ merged (locked, tag "proofread", "ours")
                             └─ right (locked) ─┘
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _browser import needs_chromium, open_page
from diced_viewer import ViewerServer

from diced import DicedStore

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHAPE, CHUNKS = (16, 32, 32), (8, 8, 8)


class Graph:
    """The served store and the UUIDs of its versions."""

    def __init__(self, location: Path, allow_writes: bool) -> None:
        self.store = DicedStore(str(location))
        repo = self.store.create_repo("seg", "a label volume, proofread twice")
        base = np.zeros(SHAPE, np.uint8)
        base[:, :, 16:] = 1
        repo.create_array("labels", np.uint8, shape=SHAPE, chunks=CHUNKS)[...] = base
        repo.lock_node("base")
        self.base = repo.uuid
        repo.create_tag("v1", message="before proofreading")
        self.left, self.right = (repo.create_branch(n, n) for n in ("left", "right"))
        repo.change_version(self.left)
        repo.get_array("labels")[2:6, 2:6, 2:6] = 5      # conflicts with the right side
        repo.get_array("labels")[10, 10, 10] = 6        # the left side only
        repo.lock_node("left edits")
        repo.change_version(self.right)
        repo.get_array("labels")[4:8, 4:8, 4:8] = 7
        repo.lock_node("right edits")
        self.merged = repo.merge([self.left, self.right], "merge of both", name="merged",
                                 on_conflict="ours")
        repo.change_version(self.merged)
        repo.lock_node("merged")
        repo.create_tag("proofread")
        self.server: ViewerServer = self.store.serve(port=0, allow_writes=allow_writes)
        self.url = self.server.url


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    made = Graph(tmp_path_factory.mktemp("versions") / "store", allow_writes=False)
    with made.store:
        yield made


@pytest.fixture
def graph_rw(tmp_path: Path) -> Iterator[Graph]:
    made = Graph(tmp_path / "store", allow_writes=True)
    with made.store:
        yield made


def _get(graph: Graph, path: str) -> Any:
    response = httpx.get(graph.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _post(graph: Graph, path: str, body: Any) -> httpx.Response:
    return httpx.post(graph.url + path, json=body, timeout=60)


# -- HTTP --------------------------------------------------------------------------------------


def test_repo_info_lists_tags_and_merge_edges(graph: Graph) -> None:
    info = _get(graph, "/api/repos/seg")
    assert [(t["name"], t["uuid"]) for t in info["tags"]] == [
        ("proofread", graph.merged), ("v1", graph.base)]
    merge = next(n for n in info["nodes"] if n["uuid"] == graph.merged)
    assert merge["parents"] == [graph.left, graph.right]
    assert [graph.left, graph.merged] in info["edges"]
    assert [graph.right, graph.merged] in info["edges"]
    assert _get(graph, "/api/node/tag:v1")["uuid"] == graph.base
    assert _get(graph, "/zarr/seg/tag:proofread/labels/zarr.json")["shape"] == list(SHAPE)


def test_diff_and_conflict_routes(graph: Graph) -> None:
    diff = _get(graph, f"/api/repos/seg/diff?a=tag:v1&b={graph.right}&voxels=1")
    (labels,) = diff["arrays"]
    assert labels["name"] == "labels" and labels["status"] == "modified"
    assert labels["modified"] == [] and labels["added"] == [[0, 0, 0]]
    assert labels["voxels"] == [{"chunk": [0, 0, 0], "voxels": 64,
                                 "box": [[4, 8], [4, 8], [4, 8]]}]
    assert not diff["truncated"] and diff["files"]["added"] == []
    same = _get(graph, f"/api/repos/seg/diff?a={graph.left}&b={graph.left}")
    assert same["arrays"] == []
    found = _get(graph, f"/api/repos/seg/conflicts?versions={graph.left},{graph.right}")
    assert [(c["kind"], c["chunk"], c["voxels"], c["box"]) for c in found["conflicts"]] == [
        ("voxels", [0, 0, 0], 8, [[4, 6], [4, 6], [4, 6]])]
    chunks = _get(graph, f"/api/node/{graph.right}/labels/diff?other={graph.base}")
    assert chunks["changed"] == [[0, 0, 0]] and chunks["chunks"] == list(CHUNKS)
    missing = httpx.get(graph.url + "/api/repos/seg/diff?a=tag:nope&b=tag:v1")
    assert missing.status_code == 404 and "no tag" in missing.json()["error"]


def test_merges_need_writes(graph: Graph) -> None:
    body = {"versions": [graph.left, graph.right], "message": "m"}
    assert _post(graph, "/api/repos/seg/merge", body).status_code == 403
    dvid = {"mergeType": "priority", "parents": [graph.left, graph.right], "note": "m"}
    assert _post(graph, f"/api/repo/{graph.base}/merge", dvid).status_code == 403


def test_merge_route_and_conflicts(graph_rw: Graph) -> None:
    body: dict[str, Any] = {"versions": [graph_rw.left, graph_rw.right], "message": "again",
                            "name": "again"}
    refused = _post(graph_rw, "/api/repos/seg/merge", body)
    assert refused.status_code == 409
    assert [c["chunk"] for c in refused.json()["conflicts"]] == [[0, 0, 0]]
    made = _post(graph_rw, "/api/repos/seg/merge", {**body, "on_conflict": "theirs"})
    assert made.status_code == 201, made.text
    repo = graph_rw.store.open_repo("seg", version=made.json()["uuid"])
    assert repo.get_array("labels")[5, 5, 5] == 7 and repo.get_array("labels")[10, 10, 10] == 6
    assert _post(graph_rw, "/api/repos/seg/merge",
                 {**body, "on_conflict": "mine"}).status_code == 400


def test_dvid_merge_endpoint(graph_rw: Graph) -> None:
    path = f"/api/repo/{graph_rw.base[:8]}/merge"
    parents = [graph_rw.left, graph_rw.right]
    conflict = _post(graph_rw, path, {"mergeType": "conflict-free", "parents": parents,
                                      "note": "dvid"})
    assert conflict.status_code == 409 and conflict.json()["conflicts"]
    done = _post(graph_rw, path, {"mergeType": "priority", "parents": parents,
                                  "note": "priority merge"})
    assert done.status_code == 200, done.text
    child = done.json()["child"]
    assert list(done.json()) == ["child"]
    repo = graph_rw.store.open_repo(uuid=child)
    assert repo.node_record().parents == tuple(parents)
    assert repo.node_record().note == "priority merge"
    assert repo.get_array("labels")[5, 5, 5] == 5, "priority: the first parent wins"
    for bad in ({"mergeType": "fast", "parents": parents},
                {"mergeType": "priority", "parents": parents[:1]},
                {"mergeType": "priority", "parents": "x"}):
        response = _post(graph_rw, path, bad)
        assert response.status_code == 400 and response.json()["error"]


# -- the browser -------------------------------------------------------------------------------


@needs_chromium
def test_dag_draws_merge_nodes_and_tag_badges(page: Any, graph: Graph) -> None:
    open_page(page, f"{graph.url}/#/repo/seg/tag:proofread")
    merge = page.locator(f'#dag .node.merge[data-uuid="{graph.merged}"]')
    assert merge.count() == 1 and merge.locator(".merge-ring").count() == 1
    assert page.locator(f'#dag .edge[data-to="{graph.merged}"]').count() == 2
    assert merge.locator("text.tag-badge").text_content() == "tag proofread"
    assert page.locator(f'#dag .node[data-uuid="{graph.base}"] text.tag-badge').text_content() \
        == "tag v1"
    assert page.locator(f'#version[data-uuid="{graph.merged}"]').count() == 1
    assert page.locator('#version .badge.tag[data-tag="proofread"]').count() == 1
    parents = page.locator("#merge-parents a")
    assert parents.count() == 2 and graph.left in parents.nth(0).get_attribute("href")
    if os.environ.get("DICED_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / "merge.png"), full_page=True)


@needs_chromium
def test_array_page_shows_a_merges_conflicts_and_compares(page: Any, graph: Graph) -> None:
    open_page(page, f"{graph.url}/#/repo/seg/{graph.merged}/array/labels")
    page.wait_for_function("(document.querySelector('#slice')?.dataset.loaded || '')"
                           ".startsWith('1|2|8,')")
    page.click("#show-conflicts")
    page.wait_for_selector("li.merge-conflict")
    assert page.locator("li.merge-conflict").all_inner_texts() == [
        "chunk (0, 0, 0): 8 voxels in 4:6, 4:6, 4:6"]
    assert page.locator("#conflict-count").inner_text() == \
        "0 of the merge's 1 conflicts cut this plane"
    page.eval_on_selector("#index-0", "(r) => { r.value = 5; "
                                      "r.dispatchEvent(new Event('input')); }")
    page.wait_for_function("(document.querySelector('#slice')?.dataset.loaded || '')"
                           ".startsWith('1|2|5,')")
    assert page.locator("#conflict-count").inner_text() == \
        "1 of the merge's 1 conflicts cut this plane"
    page.check("#label-colours")
    page.select_option("#compare-version", graph.base)
    page.wait_for_function("(document.querySelector('#slice')?.dataset.loaded || '')"
                           f".endsWith('{graph.base}')")
    assert page.locator("li.changed-chunk").all_inner_texts() == ["chunk (0, 0, 0)"]
    if os.environ.get("DICED_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOTS / "conflicts.png"), full_page=True)
    open_page(page, f"{graph.url}/#/repo/seg/{graph.left}/array/labels")
    assert page.locator("#show-conflicts").count() == 0
