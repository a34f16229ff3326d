"""The code location: the `defs` tree, and each program's definitions built from its configuration.

`workspace.yaml`, `[tool.dagster]` and `[tool.dg]` in pyproject.toml, the deploy image and the runner all
load this module. It builds the tree as `dg.load_from_defs_folder` does, from the `music_feedback.defs`
module itself rather than by finding pyproject.toml: the installed package has none beside it."""
from __future__ import annotations

import warnings
from pathlib import Path

from dagster import ComponentTree, Definitions, PreviewWarning

import music_feedback.defs
from music_feedback.defs import batch, delivery, metrics, models, operations, playlists
from music_feedback.defs.batch.jobs import daily_job_name
from music_feedback.defs.models.jobs import training_job_name
from music_feedback.defs.partitions import daily_partitions
from music_feedback.programs.loader import load_programs
from music_feedback.programs.model import Program

__all__ = ["build_definitions", "daily_job_name", "defs", "program_definitions", "training_job_name"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The folders whose definitions belong to a program; each exports program_defs(program, daily).
PROGRAM_FOLDERS = (batch, models, delivery, playlists, metrics, operations)


def program_definitions(program: Program) -> Definitions:
    daily = daily_partitions(program)
    return Definitions.merge(*(folder.program_defs(program, daily) for folder in PROGRAM_FOLDERS))


def build_definitions() -> Definitions:
    """The tree's module-level definitions (resources, warehouse tables, events relay, run-failure alert)
    and every program's. Reads configuration only: no warehouse, store or other data file."""
    return Definitions.merge(tree_definitions(), *(program_definitions(p) for p in load_programs()))


def tree_definitions() -> Definitions:
    """What `dg.load_from_defs_folder` builds: the definitions each module of the tree declares."""
    tree = ComponentTree.from_module(defs_module=music_feedback.defs, project_root=PROJECT_ROOT)
    # Dagster's loader calls a function of its own that is in preview; load_from_defs_folder hides that too.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PreviewWarning,
                                message="Function `load_definitions_from_module")
        return tree.build_defs()


defs = build_definitions()
