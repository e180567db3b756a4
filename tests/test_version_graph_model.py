"""The version DAG against a pure-Python model, driven by a Hypothesis state machine.

Rules lock, branch (named, unnamed, and the ways that must fail), move between versions,
write and delete an array and a file at open nodes, and lock through a second handle.
After every step the invariants compare what diced reports, read through a fresh
``DicedStore`` on the same location, with the model: the node listing, the commit log,
branch leaves, and the data at every node.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from diced import (
    AlreadyExistsError,
    DicedRepo,
    DicedStore,
    InvalidInputError,
    LockedError,
    NotFoundError,
)

REPO = "graph"
ARRAY = "counter"
FILE = "value.txt"
ARRAY_SHAPE = (6,)
BRANCH_NAMES = ["master", "dev", "feature-x", "fix", "exp 1"]
messages = st.text(max_size=12)


@dataclass
class ModelNode:
    uuid: str
    parent: str | None
    branch: str
    note: str
    array: tuple[int, ...] | None
    file: bytes | None
    locked: bool = False
    lock_message: str = ""
    children: list[str] = field(default_factory=list)


class VersionGraphMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = f"diced-graph-model/{uuid.uuid4().hex}"
        self.url = f"memory://{self.root}"
        self.store = DicedStore(self.url)
        self.repo: DicedRepo | None = None
        self.nodes: dict[str, ModelNode] = {}
        self.order: list[str] = []  # creation order, which list_nodes() reports
        self.current = ""

    def teardown(self) -> None:
        event(f"nodes at the end: {len(self.nodes) // 3 * 3}+")
        self.store.close()
        fs = MemoryFileSystem()
        if fs.exists(f"/{self.root}"):
            fs.rm(f"/{self.root}", recursive=True)

    # -- model helpers ----------------------------------------------------------------------

    @property
    def here(self) -> ModelNode:
        return self.nodes[self.current]

    @property
    def live(self) -> DicedRepo:
        assert self.repo is not None
        return self.repo

    def branches(self) -> set[str]:
        return {n.branch for n in self.nodes.values()}

    def leaf(self, branch: str) -> str:
        start = next(u for u in self.order if self.nodes[u].branch == branch)
        while True:
            same = [c for c in self.nodes[start].children if self.nodes[c].branch == branch]
            if not same:
                return start
            start = same[0]

    def add_node(self, node: ModelNode) -> None:
        self.nodes[node.uuid] = node
        self.order.append(node.uuid)
        if node.parent is not None:
            self.nodes[node.parent].children.append(node.uuid)

    def fresh_repo(self) -> DicedRepo:
        """The repo through a new DicedStore (no state shared with the handle under test)."""
        return DicedStore(self.url).open_repo(REPO)

    # -- rules ------------------------------------------------------------------------------

    @initialize(description=st.text(max_size=10))
    def create_repo(self, description: str) -> None:
        self.repo = self.store.create_repo(REPO, description)
        arr = self.repo.create_array(ARRAY, np.int64, shape=ARRAY_SHAPE, chunks=(4,))
        arr[...] = 0
        root = self.repo.uuid
        self.add_node(ModelNode(root, None, "master", "root", (0,) * ARRAY_SHAPE[0], None))
        self.current = root

    @rule(message=messages)
    def lock_current(self, message: str) -> None:
        if self.here.locked:
            with pytest.raises(LockedError):
                self.live.lock_node(message)
            return
        self.live.lock_node(message)
        self.here.locked, self.here.lock_message = True, message
        assert self.live.locked

    @rule(message=messages)
    def lock_current_from_another_handle(self, message: str) -> None:
        other = DicedStore(self.url).open_repo(uuid=self.current)
        if self.here.locked:
            with pytest.raises(LockedError):
                other.lock_node(message)
            return
        other.lock_node(message)
        self.here.locked, self.here.lock_message = True, message
        assert self.live.locked  # re-read from the store

    @rule(message=messages, name=st.none() | st.sampled_from([*BRANCH_NAMES, "bad:name"]))
    def create_branch(self, message: str, name: str | None) -> None:
        parent = self.here
        continues = name is None or name == parent.branch
        if not parent.locked or (name is not None and ":" in name):
            expected: type[Exception] | None = InvalidInputError
        elif continues:
            taken = any(self.nodes[c].branch == parent.branch for c in parent.children)
            expected = AlreadyExistsError if taken else None
        else:
            expected = AlreadyExistsError if name in self.branches() else None
        before = self.live.uuid
        event(f"create_branch: {expected.__name__ if expected else 'created'}")
        if expected is not None:
            with pytest.raises(expected):
                self.live.create_branch(message, name)
        else:
            child = self.live.create_branch(message, name)
            assert child not in self.nodes
            self.add_node(ModelNode(child, parent.uuid, name or parent.branch, message,
                                    parent.array, parent.file))
        assert self.live.uuid == before, "create_branch must not move the current version"

    @rule(message=messages, name=st.none() | st.sampled_from(BRANCH_NAMES[1:]))
    def lock_branch_and_move(self, message: str, name: str | None) -> None:
        """Grow the DAG: lock the current node if open, branch from it, move to the child."""
        if not self.here.locked:
            self.lock_current(message)
        taken = (name in self.branches() if name is not None else
                 any(self.nodes[c].branch == self.here.branch for c in self.here.children))
        if taken:
            return
        self.create_branch(message, name)
        self.live.change_version(self.order[-1])
        self.current = self.order[-1]

    @rule(data=st.data(), form=st.sampled_from(["full", "upper", "prefix", "uuid:branch"]))
    def change_version_to_node(self, data: st.DataObject, form: str) -> None:
        target = data.draw(st.sampled_from(self.order))
        if form == "full":
            ref = target
        elif form == "upper":
            ref = target.upper()
        elif form == "prefix":
            ref = target[:10]
            if sum(u.startswith(ref) for u in self.nodes) > 1:
                return
        else:
            branch = data.draw(st.sampled_from(sorted(self.branches())))
            ref = f"{target}:{branch}"
            target = self.leaf(branch)
        self.live.change_version(ref)
        self.current = target
        assert self.live.uuid == target

    @rule(branch=st.sampled_from([*BRANCH_NAMES, "no-such-branch"]))
    def change_version_to_branch(self, branch: str) -> None:
        if branch not in self.branches():
            with pytest.raises(NotFoundError):
                self.live.change_version(f":{branch}")
            assert self.live.uuid == self.current
            return
        self.live.change_version(f":{branch}")
        self.current = self.leaf(branch)
        assert self.live.uuid == self.current

    @rule(ref=st.sampled_from(["0" * 32, "f" * 32, "zz", ""]))
    def change_version_to_unknown(self, ref: str) -> None:
        with pytest.raises((NotFoundError, InvalidInputError)):
            self.live.change_version(ref)
        assert self.live.uuid == self.current

    @rule(index=st.integers(-ARRAY_SHAPE[0], ARRAY_SHAPE[0] - 1),
          value=st.integers(-(2**40), 2**40))
    def write_array(self, index: int, value: int) -> None:
        node = self.here
        if node.array is None:
            with pytest.raises(NotFoundError):
                self.live.get_array(ARRAY)
            return
        arr = self.live.get_array(ARRAY)
        if node.locked:
            with pytest.raises(LockedError):
                arr[index] = value
            return
        arr[index] = value
        contents = list(node.array)
        contents[index] = value
        node.array = tuple(contents)

    @rule()
    def delete_or_create_array(self) -> None:
        node = self.here
        if node.locked:
            with pytest.raises(LockedError):
                if node.array is None:
                    self.live.create_array(ARRAY, np.int64, shape=ARRAY_SHAPE, chunks=(4,))
                else:
                    self.live.delete_array(ARRAY)
            return
        if node.array is None:
            self.live.create_array(ARRAY, np.int64, shape=ARRAY_SHAPE, chunks=(4,))
            node.array = (0,) * ARRAY_SHAPE[0]
        else:
            with pytest.raises(AlreadyExistsError):
                self.live.create_array(ARRAY, np.int64, shape=ARRAY_SHAPE, chunks=(4,))
            self.live.delete_array(ARRAY)
            node.array = None

    @rule(content=st.binary(max_size=16))
    def write_file(self, content: bytes) -> None:
        if self.here.locked:
            with pytest.raises(LockedError):
                self.live.upload_filedata(FILE, content)
            return
        self.live.upload_filedata(FILE, content)
        self.here.file = content

    @rule()
    def delete_file(self) -> None:
        node = self.here
        if node.locked:
            with pytest.raises(LockedError):
                self.live.delete_file(FILE)
        elif node.file is None:
            with pytest.raises(NotFoundError):
                self.live.delete_file(FILE)
        else:
            self.live.delete_file(FILE)
            node.file = None

    # -- invariants -------------------------------------------------------------------------

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def node_listing_matches_model(self) -> None:
        listed = self.fresh_repo().list_nodes()
        assert [n.uuid for n in listed] == self.order
        for info in listed:
            node = self.nodes[info.uuid]
            assert info.parents == ((node.parent,) if node.parent else ())
            assert info.children == tuple(node.children)
            assert info.branch == node.branch
            assert info.note == node.note
            assert info.locked == node.locked
            assert info.lock_message == (node.lock_message if node.locked else "")
            assert (info.locked_at is not None) == node.locked
            assert info.is_branch_leaf == (self.leaf(node.branch) == node.uuid)

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def commit_log_matches_model(self) -> None:
        path = []
        uuid_: str | None = self.current
        while uuid_ is not None:
            path.append(uuid_)
            uuid_ = self.nodes[uuid_].parent
        expected = [(u, self.nodes[u].lock_message if self.nodes[u].locked else "(open node)")
                    for u in reversed(path)]
        assert self.live.get_commit_log() == expected
        assert self.live.get_current_version() == self.current
        assert self.live.locked == self.here.locked

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def branch_leaves_match_model(self) -> None:
        repo = self.fresh_repo()
        assert repo.uuid == self.leaf("master"), "open_repo(name) opens master's leaf"
        for branch in sorted(self.branches()):
            repo.change_version(f":{branch}")
            assert repo.uuid == self.leaf(branch), branch
        with pytest.raises(NotFoundError):
            repo.change_version(":no-such-branch")

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def data_at_every_node_matches_model(self) -> None:
        store = DicedStore(self.url)
        for u in self.order:
            node = self.nodes[u]
            repo = store.open_repo(uuid=u)
            assert repo.locked == node.locked
            if node.array is None:
                assert [n for n, _ in repo.list_instances()] == []
                with pytest.raises(NotFoundError):
                    repo.get_array(ARRAY)
            else:
                assert [n for n, _ in repo.list_instances()] == [ARRAY]
                got = repo.get_array(ARRAY)[...]
                assert got.tolist() == list(node.array), u
            if node.file is None:
                assert repo.list_files() == []
                with pytest.raises(NotFoundError):
                    repo.download_filedata(FILE)
            else:
                assert repo.list_files() == [FILE]
                assert repo.download_filedata(FILE) == node.file


VersionGraphMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestVersionGraph = VersionGraphMachine.TestCase
