"""The cleanup's schedule: Sundays 01:00 UTC."""
from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition

from music_feedback.programs.model import Program


def weekly_cleanup_schedule(program: Program, job) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=f"{program.slug}_weekly_cleanup", job=job, cron_schedule="0 1 * * 0",
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"{program.program_name}: purge expired candidates, Sundays 01:00 UTC.")
