"""A pure-Python model of a repo's version graph, for the Hypothesis state machine.

Each :class:`ModelNode` holds what diced must report for one version: its parents, branch,
note and lock state, and its content (one small array with an identity, one file). A merge
in the model is a brute-force three-way merge, voxel by voxel, against the lowest common
ancestor, folding the versions in order (docs/versioning.md states the rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: An array in the model: its identity (changes when it is deleted and created again) and
#: its values.
Array = tuple[int, tuple[int, ...]]


@dataclass
class ModelNode:
    """One version as the model knows it."""

    uuid: str
    parents: tuple[str, ...]
    branch: str
    note: str
    array: Array | None
    file: bytes | None
    locked: bool = False
    lock_message: str = ""
    children: list[str] = field(default_factory=list)

    @property
    def parent(self) -> str | None:
        return self.parents[0] if self.parents else None


def merge_values(lineage: tuple[int, ...], sides: list[tuple[int, ...]], on_conflict: str
                 ) -> tuple[tuple[int, ...], bool]:
    """Brute-force voxel fold of ``sides`` over ``lineage``; and whether a voxel conflicted."""
    acc = list(lineage)
    conflict = False
    for side in sides:
        for i, (old, new) in enumerate(zip(lineage, side, strict=True)):
            if new == old:
                continue
            if acc[i] not in (old, new):
                conflict = True
                if on_conflict == "ours":
                    continue
            acc[i] = new
    return tuple(acc), conflict


class GraphModel:
    """The versions of one repo: nodes by UUID, creation order, tags; arrays of ``width``."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.nodes: dict[str, ModelNode] = {}
        self.order: list[str] = []  # creation order, which list_nodes() reports
        self.tags: dict[str, str] = {}
        self.identities = 0

    def branches(self) -> set[str]:
        return {n.branch for n in self.nodes.values()}

    def continuation(self, uuid: str, branch: str) -> str | None:
        """The child continuing ``branch`` from node ``uuid`` (its first parent is ``uuid``)."""
        same = [c for c in self.nodes[uuid].children
                if self.nodes[c].branch == branch and self.nodes[c].parent == uuid]
        return same[0] if same else None

    def leaf(self, branch: str) -> str:
        start = next(u for u in self.order if self.nodes[u].branch == branch)
        while (following := self.continuation(start, branch)) is not None:
            start = following
        return start

    def add_node(self, node: ModelNode) -> None:
        self.nodes[node.uuid] = node
        self.order.append(node.uuid)
        for parent in node.parents:
            self.nodes[parent].children.append(node.uuid)

    def new_identity(self) -> int:
        self.identities += 1
        return self.identities

    def ancestors(self, uuid: str) -> set[str]:
        found, todo = set(), [uuid]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(self.nodes[current].parents)
        return found

    def merge_base(self, versions: list[str]) -> ModelNode:
        """The newest common ancestor that has no child among the common ancestors."""
        common = set.intersection(*(self.ancestors(v) for v in versions))
        lowest = [u for u in common if not any(c in common for c in self.nodes[u].children)]
        return self.nodes[max(lowest, key=self.order.index)]

    def model_merge(self, versions: list[str], on_conflict: str
                    ) -> tuple[Array | None, bytes | None, bool]:
        """The merged array and file, and whether a conflict was left (``fail``)."""
        base = self.merge_base(versions)
        sides = [self.nodes[v] for v in versions]
        conflict = False
        acc, contributors = base.array, []
        for side in (n.array for n in sides):
            if side == base.array:
                continue
            if not contributors:
                acc, contributors = side, [side]
                continue
            if acc is None and side is None:
                continue
            base_id = base.array[0] if base.array is not None else None
            if acc is not None and side is not None and (
                    acc[0] == side[0] or base_id not in (acc[0], side[0])):
                contributors.append(side)
                continue
            conflict = conflict or on_conflict == "fail"
            if on_conflict == "theirs":
                acc, contributors = side, [side]
        if acc is not None and len(contributors) > 1:
            same = base.array is not None and base.array[0] == acc[0]
            lineage = base.array[1] if same and base.array else (0,) * self.width
            values, clash = merge_values(lineage, [c[1] for c in contributors if c], on_conflict)
            acc = (acc[0], values)
            conflict = conflict or (clash and on_conflict == "fail")
        file = base.file
        for side_file in (n.file for n in sides):
            if side_file in (base.file, file):
                continue
            if file == base.file or on_conflict == "theirs":
                file = side_file
            elif on_conflict == "fail":
                conflict = True
        return acc, file, conflict
