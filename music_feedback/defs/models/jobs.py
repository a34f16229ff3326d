"""The weekly retrain job: both models on one week's outcomes."""
from __future__ import annotations

from dagster import AssetsDefinition, AssetSelection, define_asset_job, in_process_executor

from music_feedback.defs.partitions import weekly_partitions
from music_feedback.programs.model import Program


def training_job_name(program: Program) -> str:
    return f"{program.slug}_train_models"


def training_job(program: Program, models: list[AssetsDefinition]):
    return define_asset_job(
        training_job_name(program), selection=AssetSelection.assets(*models), executor_def=in_process_executor,
        partitions_def=weekly_partitions(program),
        description=f"{program.program_name}: retrain the propensity and affinity models on the week's "
                    "outcomes; promote a challenger only when it beats the champion.")
