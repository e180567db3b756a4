"""``run_demo`` and ``diced demo``: the repo the tour leaves behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from diced import DicedStore
from diced.cli import main
from diced.demo import (
    BRANCH_NAME,
    IMAGE_ARRAY,
    LABEL_ARRAY,
    NOTES_FILE,
    PAINTED_LABEL,
    README_FILE,
    REPO_NAME,
    run_demo,
    synthetic_volume,
)

SIZE = 64


def test_synthetic_volume_is_deterministic_with_a_few_label_regions() -> None:
    image, labels = synthetic_volume(SIZE)
    again, _ = synthetic_volume(SIZE)
    assert image.shape == labels.shape == (SIZE,) * 3
    assert image.dtype == np.uint8 and labels.dtype == np.uint64
    assert np.array_equal(image, again)
    assert 3 <= len(np.unique(labels)) <= 9
    assert PAINTED_LABEL not in labels
    assert image.std() > 10  # blobs, not a flat field


def test_run_demo_builds_two_locked_versions(tmp_path: Path) -> None:
    location = str(tmp_path / "demo.diced")
    lines: list[str] = []
    run_demo(location, size=SIZE, echo=lines.append)
    output = "\n".join(lines)
    assert "MB/s" in output and "ms" in output
    assert "imported synthetic volume" in output
    assert "original values: labels True, image True" in output

    image, labels = synthetic_volume(SIZE)
    with DicedStore(location) as store:
        repo = store.open_repo(REPO_NAME)
        nodes = repo.list_nodes()
        assert [(n.branch, n.locked, n.is_branch_leaf) for n in nodes] == [
            ("master", True, True), (BRANCH_NAME, True, True)]
        imported, edited = nodes
        assert edited.parents == (imported.uuid,)
        assert imported.lock_message == "imported synthetic volume"
        assert repo.uuid == imported.uuid  # master was never continued

        assert repo.list_files() == [README_FILE]
        assert np.array_equal(repo.get_array(IMAGE_ARRAY)[...], image)
        assert np.array_equal(repo.get_array(LABEL_ARRAY)[...], labels)
        assert repo.get_array(LABEL_ARRAY).islabel3D

        repo.change_version(f":{BRANCH_NAME}")
        assert repo.uuid == edited.uuid and repo.locked
        assert repo.list_files() == sorted([README_FILE, NOTES_FILE])
        assert [uuid for uuid, _ in repo.get_commit_log()] == [imported.uuid, edited.uuid]
        child_image = repo.get_array(IMAGE_ARRAY)[...]
        child_labels = repo.get_array(LABEL_ARRAY)[...]

    painted = child_labels == PAINTED_LABEL
    assert painted.any() and not painted.all()
    assert np.array_equal(child_labels[~painted], labels[~painted])
    brightened = child_image != image
    assert brightened.any() and not brightened.all()
    assert (child_image[brightened] > image[brightened]).all()


def test_run_demo_replaces_an_existing_demo_repo(tmp_path: Path) -> None:
    location = str(tmp_path / "demo.diced")
    run_demo(location, size=16, echo=lambda line: None)
    with DicedStore(location) as store:
        store.create_repo("keep")
        first_root = store.get_repouuid(REPO_NAME)
    lines: list[str] = []
    run_demo(location, size=16, echo=lines.append)
    assert any("deleting the existing repo" in line for line in lines)
    with DicedStore(location) as store:
        assert [name for name, _ in store.list_repos()] == [REPO_NAME, "keep"]
        assert store.get_repouuid(REPO_NAME) != first_root
        assert len(store.open_repo(REPO_NAME).list_nodes()) == 2


def test_diced_demo_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "cli.diced"), "--size", "32"])
    assert result.exit_code == 0, result.output
    assert "version DAG" in result.stdout
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--size", "16"])
    assert result.exit_code == 0, result.output
    with DicedStore(str(tmp_path / "demo.diced")) as store:
        assert [name for name, _ in store.list_repos()] == [REPO_NAME]
