"""Imports flow one way, with no cycle: faces → API → chunk access → versioning → backends.

Every ``import`` in diced and diced_viewer is read from the source (those inside functions
too; only ``if TYPE_CHECKING:`` blocks are left out, as they never run), so a lazy import
cannot hide a cycle or a layer violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "diced", ROOT / "viewer" / "diced_viewer"]

#: Layers, top to bottom; a module may import its own layer and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("faces", ("diced.cli", "diced.cli_io", "diced.cli_", "diced.demo", "diced.dask",
               "diced_viewer", "diced.testing")),
    ("services", ("diced.io", "diced.lifecycle", "diced.ome")),
    ("api", ("diced.store", "diced.repo", "diced.array", "diced")),
    # Pyramids are derived data the API keeps right: lock_node finishes them and arrays
    # build them, so they sit below the API (they use chunk access, never DicedArray).
    ("derived data", ("diced.pyramid", "diced.progress")),
    ("chunk access", ("diced.chunk_access", "diced.chunk_blocks", "diced.chunkio",
                      "diced.zarr_store", "diced.zarr_pipeline", "diced.selection",
                      "diced.codecs", "diced.context", "diced.zarr_")),
    ("versioning", ("diced.versioning",)),
    ("backends", ("diced.backends",)),
    ("base", ("diced.errors",)),
]


def _module_name(path: Path) -> str:
    for source in SOURCES:
        if path.is_relative_to(source):
            parts = [source.name, *path.relative_to(source).with_suffix("").parts]
            return ".".join(p for p in parts if p != "__init__")
    raise AssertionError(path)


def _layer(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer index): the longest match
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".") or (
                prefix.endswith("_") and module.startswith(prefix))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, modules: set[str]) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".")[: -child.level]
                    base = ".".join([*package, base]) if base else ".".join(package)
                # ``from diced.versioning import keys`` imports the module
                # diced.versioning.keys; ``from diced import X`` (a name) imports diced.
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                              else base)
            stack.append(child)
    return {m for m in found if m.split(".")[0] in ("diced", "diced_viewer")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for source in SOURCES for p in source.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = _imports(ast.parse(path.read_text()), name, set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_every_import_flows_down_the_layers() -> None:
    graph = _graph()
    wrong = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
             for m, targets in graph.items() for t in targets if _layer(t) < _layer(m)]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = _graph()
    # diced/__init__ re-exports the API: importing the package from below is importing
    # the API layer, which the layer test already refuses; leave the package out here.
    graph = {m: {t for t in ts if t != "diced"} for m, ts in graph.items() if m != "diced"}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " → ".join(
            [*visiting[visiting.index(module):], module])
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_checks_see_real_edges() -> None:
    graph = _graph()
    assert "diced.chunk_access" in graph["diced.chunkio"]
    assert "diced.versioning.keys" in graph["diced.versioning.node"]
    assert all(_layer(m) >= 0 for m in graph)
