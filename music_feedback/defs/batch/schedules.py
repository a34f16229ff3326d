"""The daily batch's schedule: the program's batchSchedule, for the day that just ended."""
from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_from_partitioned_job

from music_feedback.programs.model import Program, cron_fields


def daily_batch_schedule(program: Program, job) -> ScheduleDefinition:
    minute, hour = cron_fields(program.batch_schedule)
    return build_schedule_from_partitioned_job(
        job, hour_of_day=hour, minute_of_hour=minute, default_status=DefaultScheduleStatus.STOPPED,
        description=f"{program.program_name}: every day at {hour:02d}:{minute:02d} UTC (batchSchedule), "
                    "runs the batch for the day that just ended.")
