"""No import cycle in the `music_feedback` package and the tools on top of it (`music_feedback_tools`), read
from the source with `ast` (nothing is imported); both packages form one graph, so a cycle through the CLI and
a tool is found too.

Every `music_feedback/**/*.py` and `music_feedback_tools/**/*.py` is a module; each `import x`, `from x import y` and `from . import y` is an
edge to the module it names, and `from package import name` goes to the submodule `package.name` when that
file exists, else to the package. Two graphs are checked:

- the module-level one: the imports that run when the module is imported (the module's and its classes'
  bodies, `try`/`if` blocks included, `if TYPE_CHECKING:` blocks left out);
- the whole one: every import, those deferred into functions and `TYPE_CHECKING` blocks too. A deferred import
  only postpones a cycle to the first call; it is still two modules that each need the other.

A cycle is a strongly connected component of more than one module (Tarjan); the failure names each one with
a path through it and the lines of its imports. Dynamic imports (`importlib.import_module("...")`) are not
followed.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGES = ("music_feedback", "music_feedback_tools")
ROOT = Path(__file__).resolve().parents[1]

MODULE_LEVEL = "module-level"
DEFERRED = "function-level"
TYPE_ONLY = "TYPE_CHECKING"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    kind: str  # MODULE_LEVEL, DEFERRED or TYPE_ONLY
    file: str  # the source's, relative to the root


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name of every module of the package under root, to its file."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """(node, kind) of every Import and ImportFrom in the tree."""
    found = []

    def visit(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, kind))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            kind = DEFERRED
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, TYPE_ONLY if kind == MODULE_LEVEL else kind)
            for child in node.orelse:
                visit(child, kind)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, kind)

    visit(tree, MODULE_LEVEL)
    return found


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, known: dict[str, Path]):
    """The package's modules an import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            target = alias.name
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                yield target
        return
    if node.level:
        parts = name.split(".") if is_package else name.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if alias.name != "*" and submodule in known:
            yield submodule
        elif base in known:
            yield base


def import_graph(root: Path = ROOT, packages: str | tuple[str, ...] = PACKAGES
                 ) -> tuple[dict[str, Path], list[Edge]]:
    known = {}
    for package in (packages,) if isinstance(packages, str) else packages:
        known.update(modules(root, package))
    edges = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        file = path.relative_to(root).as_posix()
        for node, kind in _imports(tree):
            for target in _targets(node, name, path.name == "__init__.py", known):
                if target != name:
                    edges.append(Edge(name, target, node.lineno, kind, file))
    return known, edges


def strongly_connected(nodes, adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(sorted(adjacency.get(node, ())))))

    for start in sorted(nodes):
        if start in index:
            continue
        work: list = []
        enter(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    enter(child)
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def cycles(edges: list[Edge], kinds: set[str]) -> list[tuple[list[str], list[Edge]]]:
    """Each cycle (strongly connected component) of the graph of the given kinds of import, with one closed
    path through it: the shortest from its first module back to it."""
    chosen = sorted((e for e in edges if e.kind in kinds), key=lambda e: (e.source, e.target, e.line))
    adjacency: dict[str, set[str]] = {}
    first: dict[tuple[str, str], Edge] = {}
    for e in chosen:
        adjacency.setdefault(e.source, set()).add(e.target)
        first.setdefault((e.source, e.target), e)
    nodes = {e.source for e in chosen} | {e.target for e in chosen}
    found = []
    for component in strongly_connected(nodes, adjacency):
        members = set(component)
        start = component[0]
        previous: dict[str, str] = {}
        frontier = [start]
        while start not in previous:  # breadth first inside the component, which leads back to start
            following = []
            for node in frontier:
                for child in sorted(adjacency[node] & members):
                    if child not in previous:
                        previous[child] = node
                        following.append(child)
            frontier = following
        between = []
        node = previous[start]
        while node != start:
            between.append(node)
            node = previous[node]
        loop = [start, *reversed(between), start]
        found.append((component, [first[pair] for pair in zip(loop, loop[1:])]))
    return found


def describe(found: list[tuple[list[str], list[Edge]]]) -> str:
    lines = []
    for component, path in found:
        lines.append(f"cycle of {len(component)} modules: {', '.join(component)}")
        lines.extend(f"    {e.source} imports {e.target}  ({e.file}:{e.line}, {e.kind})" for e in path)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_reader_sees_the_package(graph):
    known, edges = graph
    pairs = {(e.source, e.target) for e in edges}
    assert {"music_feedback.cli", "music_feedback.quality", "music_feedback.scoring.wire",
            "music_feedback_tools.bench", "music_feedback_tools.demo_aws"} <= known.keys()
    # `from music_feedback import settings` names the submodule, not the package
    assert ("music_feedback.cli", "music_feedback.settings") in pairs
    assert ("music_feedback.resources", "music_feedback.scoring.select") in pairs
    # across the two packages, both ways: the CLI's command to a tool, a tool to the product
    assert ("music_feedback.cli", "music_feedback_tools.bench") in pairs
    assert ("music_feedback_tools.demo_aws", "music_feedback.aws.provision") in pairs
    assert len(edges) > 200


def test_no_module_level_import_cycle(graph):
    _, edges = graph
    found = cycles(edges, {MODULE_LEVEL})
    if found:
        pytest.fail("import cycles at import time:\n" + describe(found), pytrace=False)


def test_no_import_cycle_counting_function_level_and_type_checking_imports(graph):
    _, edges = graph
    found = cycles(edges, {MODULE_LEVEL, DEFERRED, TYPE_ONLY})
    if found:
        pytest.fail("import cycles (an import inside a function or a TYPE_CHECKING block only defers one: "
                    "move what both modules need into a third, or drop one direction):\n" + describe(found),
                    pytrace=False)


def test_the_check_finds_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                      "if TYPE_CHECKING:\n    from .. import a\n")
    (pkg / "d.py").write_text("import pkg.e\n")
    (pkg / "e.py").write_text("class E:\n    from pkg.d import thing\n")
    (pkg / "f.py").write_text("from . import *\nfrom pkg import a\nimport pkg.sub.c\n")
    _, edges = import_graph(tmp_path, "pkg")
    assert [c for c, _ in cycles(edges, {MODULE_LEVEL})] == [["pkg.d", "pkg.e"]]
    found = cycles(edges, {MODULE_LEVEL, DEFERRED, TYPE_ONLY})
    assert [c for c, _ in found] == [["pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.d", "pkg.e"]]
    assert [(e.source, e.target, e.kind) for e in found[0][1]] == [
        ("pkg.a", "pkg.b", MODULE_LEVEL), ("pkg.b", "pkg.sub.c", DEFERRED), ("pkg.sub.c", "pkg.a", TYPE_ONLY)]
    assert "pkg.sub.c imports pkg.a  (pkg/sub/c.py:3, TYPE_CHECKING)" in describe(found)
