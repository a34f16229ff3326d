"""The export's schedule: 03:30 UTC, for the day before (the batch stores it at 02:00)."""
from __future__ import annotations

from dagster import ScheduleDefinition

from music_feedback.defs.automation import daily_schedule
from music_feedback.programs.model import Program


def export_schedule(program: Program, job) -> ScheduleDefinition:
    return daily_schedule(program, job, 3, 30, "export")
