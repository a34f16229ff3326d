"""Upkeep: the weekly purge of expired candidates (asset, job, schedule), and the alert written for every
failed run of any job (a module-level sensor, found with the tree)."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.operations.assets import build_cleanup
from music_feedback.defs.operations.checks import build_cleanup_check
from music_feedback.defs.operations.jobs import cleanup_job
from music_feedback.defs.operations.schedules import weekly_cleanup_schedule
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    job = cleanup_job(program)
    return Definitions(assets=[build_cleanup(program)], asset_checks=[build_cleanup_check(program)], jobs=[job],
                       schedules=[weekly_cleanup_schedule(program, job)])
