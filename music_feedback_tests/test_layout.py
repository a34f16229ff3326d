"""The layout Dagster engineers expect: every definition in `music_feedback/defs/`, one folder per concern,
the libraries below never importing it, and the tools that are not the product (the bench, the simulators,
the AWS stand-ins and demo day) in `music_feedback_tools/`, outside the package Dagster loads, which never
imports them at module level (read from the source with `ast`; nothing is imported)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "music_feedback"
TOOLS = PACKAGE.with_name("music_feedback_tools")
DEFS = PACKAGE / "defs"
# What declares a Dagster definition: a decorator, a job or schedule factory, an external asset.
DECLARES = {"asset", "multi_asset", "asset_check", "multi_asset_check", "graph_asset", "op", "job", "graph",
            "sensor", "asset_sensor", "multi_asset_sensor", "run_failure_sensor", "run_status_sensor",
            "schedule", "define_asset_job", "build_schedule_from_partitioned_job", "ScheduleDefinition",
            "SensorDefinition", "AssetSpec", "Definitions"}
# The layers on top, which run the definitions: the root module, the CLI, the runners (the benches and
# simulators, which run them too, are in music_feedback_tools/).
ON_TOP = ("definitions.py", "cli.py", "runner.py", "delivery/runner.py")
# The product modules that may reach for a tool, inside a command function only.
CLI = ("cli.py", "aws/cli.py")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _called_or_decorating(tree: ast.AST) -> set[str]:
    """The names in DECLARES that the module takes from dagster and calls or decorates with."""
    names, modules = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "dagster":
            names.update({(a.asname or a.name): a.name for a in node.names})
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "dagster")
    found = set()
    for node in ast.walk(tree):
        targets = [node.func] if isinstance(node, ast.Call) else []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets += node.decorator_list
        for target in targets:
            target = target.func if isinstance(target, ast.Call) else target
            if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) in modules:
                name = target.attr
            else:
                name = names.get(getattr(target, "id", None))
            if name in DECLARES:
                found.add(name)
    return found


def _imports_defs(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("music_feedback.defs"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("music_feedback.defs") for a in node.names):
            return True
    return False


def test_every_definition_is_declared_under_defs():
    outside = {name: sorted(found) for name, tree in _modules()
               if not name.startswith("defs/") and name != "definitions.py"
               and (found := _called_or_decorating(tree))}
    assert outside == {}


def test_each_concern_has_its_folder_with_files_named_for_what_they_hold():
    folders = {p.name for p in DEFS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {"batch", "models", "delivery", "playlists", "metrics", "operations", "events_relay",
                       "warehouse_tables"}
    allowed = {"__init__.py", "assets.py", "checks.py", "jobs.py", "schedules.py", "sensors.py"}
    for folder in folders:
        files = {p.name for p in (DEFS / folder).glob("*.py")}
        assert files <= allowed, (folder, files - allowed)


def test_only_the_layers_on_top_import_defs():
    importers = {name for name, tree in _modules() if not name.startswith("defs/") and _imports_defs(tree)}
    assert importers and all(name.startswith(ON_TOP) for name in importers), sorted(importers)


def _tool_imports(tree: ast.AST, module_level: bool) -> list[int]:
    """Lines of the imports of music_feedback_tools: those run when the module is imported (module and class
    bodies, `if`/`try` blocks included), or those inside functions."""
    found = []

    def named(node: ast.AST) -> bool:
        if isinstance(node, ast.ImportFrom):
            return not node.level and (node.module or "").split(".")[0] == TOOLS.name
        return isinstance(node, ast.Import) and any(a.name.split(".")[0] == TOOLS.name for a in node.names)

    def visit(node: ast.AST, in_function: bool) -> None:
        if named(node) and in_function != module_level:
            found.append(node.lineno)
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def test_the_tools_are_outside_the_package_dagster_loads():
    assert not [name for name in ("bench", "simulate", "standins") if (PACKAGE / name).exists()]
    assert not (PACKAGE / "aws" / "demo.py").exists()
    assert {"bench", "simulate", "standins", "demo_aws.py"} <= {p.name for p in TOOLS.iterdir()}
    assert (TOOLS / "bench" / "feedback_load.lua").is_file()


def test_the_product_never_imports_the_tools_at_module_level():
    found = {name: lines for name, tree in _modules() if (lines := _tool_imports(tree, module_level=True))}
    assert found == {}


def test_only_the_cli_commands_import_the_tools():
    importers = {name for name, tree in _modules() if _tool_imports(tree, module_level=False)}
    assert importers and importers <= set(CLI), sorted(importers)


def test_the_reader_sees_tool_imports():
    tree = ast.parse("import music_feedback_tools.bench\n"
                     "try:\n    from music_feedback_tools.simulate import day\nexcept ImportError:\n    pass\n"
                     "class A:\n    import music_feedback_tools\n"
                     "def f():\n    from music_feedback_tools.demo_aws import run_demo\n"
                     "import music_feedback_toolsmith\nfrom .music_feedback_tools import x\n")
    assert _tool_imports(tree, module_level=True) == [1, 3, 7]
    assert _tool_imports(tree, module_level=False) == [9]


def _unexplained_function_imports(source: str) -> list[int]:
    """Lines of the imports inside a function with no `# lazy: <why>` comment on the line or the one above."""
    lines = source.splitlines()
    found = []

    def explained(line: int) -> bool:
        return "# lazy:" in lines[line - 1] or (line > 1 and lines[line - 2].strip().startswith("# lazy:"))

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and in_function and not explained(node.lineno):
            found.append(node.lineno)
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(source), False)
    return found


def test_every_import_inside_a_function_says_why_it_is_lazy():
    """An import belongs at the module's top unless deferring it measurably keeps a command's start fast (or
    keeps a tool out of the product); then a `# lazy: <why>` comment sits on its line or the line above."""
    found = [f"music_feedback/{path.relative_to(PACKAGE).as_posix()}:{line}"
             for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts
             for line in _unexplained_function_imports(path.read_text(encoding="utf-8"))]
    assert found == []


def test_the_reader_sees_unexplained_function_imports():
    source = ("import os\n"
              "def f():\n    import json\n"
              "    # lazy: boto3 costs ~0.3 s of every command's start\n    import boto3\n"
              "    import yaml  # lazy: only this command reads YAML\n"
              "    # a plain comment\n    from x import y\n"
              "class A:\n    def g(self):\n        from . import z\n")
    assert _unexplained_function_imports(source) == [3, 8, 11]
