"""The delivery jobs: one marketplace's email for one day, and the day's export to the lake."""
from __future__ import annotations

from dagster import AssetsDefinition, DailyPartitionsDefinition, define_asset_job, in_process_executor

from music_feedback.defs.automation import asset_job
from music_feedback.programs.model import Program


def email_job_name(program: Program) -> str:
    return f"{program.slug}_email_delivery"


def email_job(program: Program, asset_def: AssetsDefinition):
    return define_asset_job(email_job_name(program), selection=[asset_def], executor_def=in_process_executor,
                            partitions_def=asset_def.partitions_def,
                            description=f"{program.program_name}: send one marketplace's feedback requests.")


def export_job(program: Program, daily: DailyPartitionsDefinition):
    return asset_job(program, "export", ["s3_export"], "the day's candidates to the lake (03:30 UTC).", daily)
