"""The version DAG against a pure-Python model, driven by a Hypothesis state machine.

Rules lock, branch (named, unnamed, and the ways that must fail), move between versions,
write and delete an array and a file at open nodes, lock through a second handle, tag
versions (and fail to: open nodes, taken names), move to tags, and merge two or three
versions with every conflict policy. The model is a dict of contents per version; a merge
in the model is a brute-force three-way merge, voxel by voxel, against the lowest common
ancestor. After every step the invariants compare what diced reports, read through a
fresh ``DicedStore`` on the same location, with the model: the node listing (parents of
merge nodes included), the commit log, the full log, branch leaves, tags, and the data
at every node.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

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

sys.path.insert(0, str(Path(__file__).parent))

from _graph_model import GraphModel, ModelNode

from diced import (
    AlreadyExistsError,
    DicedRepo,
    DicedStore,
    InvalidInputError,
    LockedError,
    MergeConflictError,
    NotFoundError,
)

REPO = "graph"
ARRAY = "counter"
FILE = "value.txt"
ARRAY_SHAPE = (6,)
BRANCH_NAMES = ["master", "dev", "feature-x", "fix", "exp 1"]
TAG_NAMES = ["v1", "v2.0", "rel-3"]
messages = st.text(max_size=12)
class VersionGraphMachine(GraphModel, RuleBasedStateMachine):
    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        GraphModel.__init__(self, ARRAY_SHAPE[0])
        self.root = f"diced-graph-model/{uuid.uuid4().hex}"
        self.url = f"memory://{self.root}"
        self.store = DicedStore(self.url)
        self.repo: DicedRepo | None = None
        self.current = ""

    def teardown(self) -> None:
        event(f"nodes at the end: {len(self.nodes) // 3 * 3}+")
        self.store.close()
        fs = MemoryFileSystem()
        if fs.exists(f"/{self.root}"):
            fs.rm(f"/{self.root}", recursive=True)

    # -- the model and the repo under test --------------------------------------------------

    @property
    def here(self) -> ModelNode:
        return self.nodes[self.current]

    @property
    def live(self) -> DicedRepo:
        assert self.repo is not None
        return self.repo

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
        self.add_node(ModelNode(root, (), "master", "root",
                                (self.new_identity(), (0,) * ARRAY_SHAPE[0]), None))
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
            taken = self.continuation(parent.uuid, parent.branch) is not None
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
            self.add_node(ModelNode(child, (parent.uuid,), name or parent.branch, message,
                                    parent.array, parent.file))
        assert self.live.uuid == before, "create_branch must not move the current version"

    @rule(message=messages, name=st.none() | st.sampled_from(BRANCH_NAMES[1:]))
    def lock_branch_and_move(self, message: str, name: str | None) -> None:
        """Grow the DAG: lock the current node if open, branch from it, move to the child."""
        if not self.here.locked:
            self.lock_current(message)
        taken = (name in self.branches() if name is not None else
                 self.continuation(self.here.uuid, self.here.branch) is not None)
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
        contents = list(node.array[1])
        contents[index] = value
        node.array = (node.array[0], tuple(contents))

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
            node.array = (self.new_identity(), (0,) * ARRAY_SHAPE[0])
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

    @rule(data=st.data(), index=st.integers(0, ARRAY_SHAPE[0] - 1), value=st.integers(1, 3),
          content=st.none() | st.binary(max_size=2))
    def edit_on_a_new_branch(self, data: st.DataObject, index: int, value: int,
                             content: bytes | None) -> None:
        """From some locked node: a new branch, one voxel (and maybe the file) changed,
        locked. Diverging edits like these are what merges are for."""
        locked = [u for u in self.order if self.nodes[u].locked]
        if not locked:
            return
        start = data.draw(st.sampled_from(locked))
        branch = f"edit-{len(self.order)}"
        self.live.change_version(start)
        self.current = start
        self.create_branch("edit", branch)
        self.live.change_version(self.order[-1])
        self.current = self.order[-1]
        if self.here.array is not None:
            self.write_array(index, value)
        if content is not None:
            self.write_file(content)
        self.lock_current("edited")

    @rule(name=st.sampled_from([*TAG_NAMES, "bad name"]), message=messages)
    def create_tag(self, name: str, message: str) -> None:
        if name == "bad name" or not self.here.locked:
            expected: type[Exception] | None = InvalidInputError
        else:
            expected = AlreadyExistsError if name in self.tags else None
        event(f"create_tag: {expected.__name__ if expected else 'created'}")
        if expected is not None:
            with pytest.raises(expected):
                self.live.create_tag(name, message=message)
            return
        tag = self.live.create_tag(name, message=message)
        assert (tag.name, tag.uuid, tag.message) == (name, self.current, message)
        self.tags[name] = self.current

    @rule(name=st.sampled_from(TAG_NAMES))
    def delete_tag(self, name: str) -> None:
        if name not in self.tags:
            with pytest.raises(NotFoundError):
                self.live.delete_tag(name)
            return
        self.live.delete_tag(name)
        del self.tags[name]

    @rule(name=st.sampled_from(TAG_NAMES))
    def change_version_to_tag(self, name: str) -> None:
        if name not in self.tags:
            with pytest.raises(NotFoundError):
                self.live.change_version(f"tag:{name}")
            assert self.live.uuid == self.current
            return
        self.live.change_version(f"tag:{name}")
        self.current = self.tags[name]
        assert self.live.uuid == self.current

    @rule(data=st.data(), count=st.sampled_from([2, 2, 3]),
          on_conflict=st.sampled_from(["fail", "ours", "theirs"]),
          name=st.sampled_from([None, None, "new", "new", "master", "dev", "bad:name"]),
          message=messages, move=st.booleans(), locked_only=st.integers(0, 9))
    def merge(self, data: st.DataObject, count: int, on_conflict: str, name: str | None,
              message: str, move: bool, locked_only: int) -> None:
        """Merge versions (mostly locked ones, as only those merge), into a new branch
        (``new``), an existing one or a bad name, or continuing the first version's."""
        pool = [u for u in self.order if self.nodes[u].locked] if locked_only else self.order
        if len(pool) < count:
            return
        versions = data.draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count,
                                      unique=True))
        if name == "new":
            name = f"merge-{len(self.order)}"
        named = {u: t for t, u in self.tags.items()}
        refs = [f"tag:{named[v]}" if v in named and data.draw(st.booleans()) else v
                for v in versions]
        first = self.nodes[versions[0]]
        expected: type[Exception] | None = None
        if not all(self.nodes[v].locked for v in versions) or (name and ":" in name):
            expected = InvalidInputError
        else:
            array, file, conflict = self.model_merge(versions, on_conflict)
            branch = first.branch if name is None else name
            if conflict:
                expected = MergeConflictError
            elif branch == first.branch:
                taken = self.continuation(first.uuid, branch) is not None
                expected = AlreadyExistsError if taken else None
            else:
                expected = AlreadyExistsError if branch in self.branches() else None
        before = self.live.uuid
        event(f"merge of {count}, {on_conflict}: {expected.__name__ if expected else 'merged'}")
        if expected is not None:
            nodes_before = len(self.fresh_repo().list_nodes())
            with pytest.raises(expected):
                self.live.merge(refs, message, on_conflict=on_conflict,  # type: ignore[arg-type]
                                name=name)
            assert len(self.fresh_repo().list_nodes()) == nodes_before
            return
        merged = self.live.merge(refs, message, on_conflict=on_conflict,  # type: ignore[arg-type]
                                 name=name)
        assert merged not in self.nodes
        self.add_node(ModelNode(merged, tuple(versions), branch, message, array, file))
        assert self.live.uuid == before, "merge must not move the current version"
        if move:
            self.live.change_version(merged)
            self.current = merged

    # -- invariants -------------------------------------------------------------------------

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def node_listing_matches_model(self) -> None:
        listed = self.fresh_repo().list_nodes()
        assert [n.uuid for n in listed] == self.order
        for info in listed:
            node = self.nodes[info.uuid]
            assert info.parents == node.parents
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
    def full_log_matches_model(self) -> None:
        log = self.live.log()
        assert {r.uuid for r in log} == self.ancestors(self.current)
        seen: set[str] = set()
        for record in log:  # every node before its parents
            assert all(p not in seen for p in record.parents)
            seen.add(record.uuid)
        first = [r.uuid for r in self.live.log(all_parents=False)]
        assert first == [u for u, _ in self.live.get_commit_log()][::-1]

    @precondition(lambda self: self.repo is not None)
    @invariant()
    def tags_match_model(self) -> None:
        repo = self.fresh_repo()
        assert {t.name: t.uuid for t in repo.list_tags()} == self.tags
        for name, tagged in self.tags.items():
            repo.change_version(f"tag:{name}")
            assert repo.uuid == tagged

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
                assert got.tolist() == list(node.array[1]), u
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
