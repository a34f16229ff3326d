"""The metrics' schedule: 23:59 UTC, for the day before."""
from __future__ import annotations

from dagster import ScheduleDefinition

from music_feedback.defs.automation import daily_schedule
from music_feedback.programs.model import Program


def metrics_schedule(program: Program, job) -> ScheduleDefinition:
    return daily_schedule(program, job, 23, 59, "metrics and report")
