"""The layout Dagster engineers expect: every definition in `music_feedback/defs/`, one folder per concern,
and the libraries below never importing it (read from the source with `ast`; nothing is imported)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "music_feedback"
DEFS = PACKAGE / "defs"
# What declares a Dagster definition: a decorator, a job or schedule factory, an external asset.
DECLARES = {"asset", "multi_asset", "asset_check", "multi_asset_check", "graph_asset", "op", "job", "graph",
            "sensor", "asset_sensor", "multi_asset_sensor", "run_failure_sensor", "run_status_sensor",
            "schedule", "define_asset_job", "build_schedule_from_partitioned_job", "ScheduleDefinition",
            "SensorDefinition", "AssetSpec", "Definitions"}
# The layers on top, which run the definitions: the root module, the CLI, the runners, benches and simulators.
ON_TOP = ("definitions.py", "cli.py", "runner.py", "delivery/runner.py", "bench/", "simulate/")


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
