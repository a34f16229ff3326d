"""The two models, retrained weekly and promoted only when they beat the champion; their job and schedule.
The batch's scoring stage depends on them (lineage), and reads the champion of its day from the registry."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.models.assets import build_models
from music_feedback.defs.models.jobs import training_job
from music_feedback.defs.models.schedules import weekly_retrain_schedule
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    models = build_models(program)
    job = training_job(program, models)
    return Definitions(assets=models, jobs=[job], schedules=[weekly_retrain_schedule(program, job)])
