"""The daily batch: day D's plays extracted, unified, filtered, hydrated with features, scored and stored,
with a blocking check on every stage (standalone where it reads only what the stage persisted); its job, and the schedule that runs it after D has ended."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.batch.assets.checks import batch_checks
from music_feedback.defs.batch.assets import batch_assets
from music_feedback.defs.batch.jobs import daily_job
from music_feedback.defs.batch.schedules import daily_batch_schedule
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    assets = batch_assets(program, daily)
    job = daily_job(program, assets, daily)
    return Definitions(assets=assets, asset_checks=batch_checks(program, daily), jobs=[job],
                       schedules=[daily_batch_schedule(program, job)])
