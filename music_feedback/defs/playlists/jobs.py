"""The playlists job: score tracks from the day's feedback and move the curated playlists."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition

from music_feedback.defs.automation import asset_job
from music_feedback.programs.model import Program


def playlists_job(program: Program, daily: DailyPartitionsDefinition):
    return asset_job(program, "playlists", ["playlist_scores", "curated_playlists"],
                     "score tracks from feedback and move the curated playlists (18:00 UTC).", daily)
