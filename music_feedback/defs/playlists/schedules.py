"""The playlists' schedule: at SCORED_AT (18:00 UTC) for the day before."""
from __future__ import annotations

from dagster import ScheduleDefinition

from music_feedback.defs.automation import daily_schedule
from music_feedback.playlists.scoring import SCORED_AT
from music_feedback.programs.model import Program


def playlists_schedule(program: Program, job) -> ScheduleDefinition:
    # at the time the scores are taken as of, so a backfill scores what the schedule did
    return daily_schedule(program, job, SCORED_AT.hour, SCORED_AT.minute, "playlists")
