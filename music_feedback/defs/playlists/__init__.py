"""Playlists: the answers the service collects, the tracks scored from them and the curated playlists they
move; the job, its 18:00 schedule, and the sensor that recounts once enough feedback has arrived."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.playlists.assets import build_playlists, feedback_spec
from music_feedback.defs.playlists.jobs import playlists_job
from music_feedback.defs.playlists.schedules import playlists_schedule
from music_feedback.defs.playlists.sensors import feedback_volume_sensor
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    job = playlists_job(program, daily)
    return Definitions(assets=[feedback_spec(program), *build_playlists(program, daily)], jobs=[job],
                       schedules=[playlists_schedule(program, job)],
                       sensors=[feedback_volume_sensor(program, job)])
