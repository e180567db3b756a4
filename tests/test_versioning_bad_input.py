"""Bad input to tags, diff, merge, history and time travel: a clear DicedException each,
and the store unchanged, byte for byte."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_crash_safety import _snapshot

from diced import (
    AlreadyExistsError,
    DicedException,
    DicedRepo,
    DicedStore,
    InvalidIndexError,
    InvalidInputError,
    LockedError,
    MergeConflictError,
    NotFoundError,
)


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    """Repo ``r`` (locked base, two locked conflicting branches, an open leaf) and ``other``."""
    location = tmp_path / "store"
    with DicedStore(str(location)) as store:
        repo = store.create_repo("r")
        repo.create_array("a", np.uint8, shape=(8, 8), chunks=(4, 4))[...] = 1
        repo.lock_node("base")
        left, right = repo.create_branch("l", "left"), repo.create_branch("r", "right")
        for version, value in ((left, 2), (right, 3)):
            repo.change_version(version)
            repo.get_array("a")[0, 0] = value
            repo.lock_node("edit")
        repo.change_version(repo.create_branch("open"))
        other = store.create_repo("other")
        other.lock_node("other root")
        yield location, store, repo, left, right, other.uuid


Check = Callable[[], object]


def _refused(location: Path, error: type[DicedException], words: tuple[str, ...],
             call: Check) -> None:
    before = _snapshot(str(location))
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert all(w in message for w in words), message
    assert _snapshot(str(location)) == before, "a refused call changed the store"


def test_merge_refuses_bad_versions(setup: Any) -> None:
    location, store, repo, left, right, other = setup
    open_node = repo.uuid
    cases: list[tuple[type[DicedException], tuple[str, ...], Check]] = [
        (InvalidInputError, ("open", "lock it"), lambda: repo.merge([left, open_node], "m")),
        (NotFoundError, ("not a version of repo", other),
         lambda: repo.merge([left, other], "m")),
        (InvalidInputError, ("two or more",), lambda: repo.merge([left], "m")),
        (InvalidInputError, ("list of two",), lambda: repo.merge(left, "m")),
        (NotFoundError, ("no tag named 'nope'",), lambda: repo.merge([left, "tag:nope"], "m")),
        (InvalidInputError, ("same node twice",),
         lambda: repo.merge([left, ":left"], "m")),
        (InvalidInputError, ("on_conflict",),
         lambda: repo.merge([left, right], "m", on_conflict="mine")),  # type: ignore[arg-type]
        (InvalidInputError, ("message",), lambda: repo.merge([left, right], 5)),
        (InvalidInputError, ("branch name",),
         lambda: repo.merge([left, right], "m", name="a:b")),
        (MergeConflictError, ("1 conflict", "'a'", "(0, 0)", "wrote nothing"),
         lambda: repo.merge([left, right], "m")),
        (AlreadyExistsError, ("already exists",),
         lambda: repo.merge([left, right], "m", name="right", on_conflict="ours")),
        (LockedError, ("read-only",),
         lambda: store.open_repo("r", readonly=True).merge([left, right], "m")),
    ]
    for error, words, call in cases:
        _refused(location, error, words, call)


def test_a_failing_conflict_function_leaves_no_node(setup: Any) -> None:
    _, _, repo, left, right, _ = setup
    nodes = len(repo.list_nodes())

    def wrong_shape(*args: Any) -> Any:
        return np.zeros((2, 2), np.uint8)

    def raises(*args: Any) -> Any:
        raise RuntimeError("user code failed")

    with pytest.raises(InvalidInputError, match="whole chunk"):
        repo.merge([left, right], "m", name="x", on_conflict=wrong_shape)
    with pytest.raises(RuntimeError, match="user code failed"):
        repo.merge([left, right], "m", name="x", on_conflict=raises)
    assert len(repo.list_nodes()) == nodes


def test_tags_diff_history_and_time_travel_refuse_bad_input(setup: Any) -> None:
    location, store, repo, left, right, other = setup
    repo.create_tag("v1", version=left)
    cases: list[tuple[type[DicedException], tuple[str, ...], Check]] = [
        (InvalidInputError, ("open",), lambda: repo.create_tag("t")),
        (InvalidInputError, ("invalid tag name",), lambda: repo.create_tag("bad name", left)),
        (AlreadyExistsError, ("never move",), lambda: repo.create_tag("v1", right)),
        (NotFoundError, ("no tag",), lambda: repo.delete_tag("v9")),
        (NotFoundError, ("no version node",), lambda: repo.create_tag("t", other)),
        (LockedError, ("read-only",),
         lambda: store.open_repo("r", readonly=True).create_tag("t", left)),
        (NotFoundError, ("no tag",), lambda: repo.diff("tag:v9", left)),
        (NotFoundError, (other,), lambda: repo.diff(left, other)),
        (InvalidInputError, ("ISO-8601",), lambda: repo.version_at("noon")),
        (InvalidInputError, ("datetime",), lambda: repo.version_at(12)),  # type: ignore[arg-type]
        (NotFoundError, ("no branch",), lambda: repo.version_at("2030-01-01", "nope")),
        (NotFoundError, ("locked at or before",), lambda: repo.version_at("1999-01-01")),
        (InvalidIndexError, ("not inside",), lambda: repo.history("a", (8, 0))),
        (InvalidIndexError, ("not inside",), lambda: repo.history("a", (0,))),
        (NotFoundError, ("no array",), lambda: repo.history("b", (0, 0))),
        (InvalidIndexError, ("not a chunk",), lambda: repo.get_array("a").chunk_history((2, 0))),
        (InvalidInputError, ("not both",), lambda: store.open_repo(uuid=left, version=right)),
        (NotFoundError, ("no tag",), lambda: store.open_repo("r", version="tag:zz")),
    ]
    for error, words, call in cases:
        _refused(location, error, words, call)


def test_dicedrepo_keeps_its_version_when_a_reference_fails(setup: Any) -> None:
    repo: DicedRepo = setup[2]
    before = repo.uuid
    for bad in ("tag:", "tag:nope", "tag:bad name", ":nope"):
        with pytest.raises((NotFoundError, InvalidInputError)):
            repo.change_version(bad)
        assert repo.uuid == before
