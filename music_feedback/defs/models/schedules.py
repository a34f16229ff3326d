"""The weekly retrain's schedule: Sunday 04:00 UTC, for the week that just ended (the seed's retrain)."""
from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_from_partitioned_job

from music_feedback.programs.model import Program



def weekly_retrain_schedule(program: Program, job) -> ScheduleDefinition:
    return build_schedule_from_partitioned_job(
        job, name=f"{program.slug}_weekly_retrain", day_of_week=0, hour_of_day=4, minute_of_hour=0,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"{program.program_name}: retrain both models every Sunday at 04:00 UTC on the "
                    "week's outcomes; a challenger replaces the champion only if it beats it.")
