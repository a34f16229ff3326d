"""Delivery: each marketplace's feedback requests by email, started by a sensor once the day is stored and
its local send time has come; and the day's candidates exported to the lake on a schedule."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.delivery.assets import build_email, build_export
from music_feedback.defs.delivery.jobs import email_job, export_job
from music_feedback.defs.delivery.schedules import export_schedule
from music_feedback.defs.delivery.sensors import email_sensor
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    export = export_job(program, daily)
    email = [build_email(program, daily)] if program.channel("email") else []
    jobs = [email_job(program, asset) for asset in email]
    return Definitions(assets=[*email, build_export(program, daily)], jobs=[*jobs, export],
                       schedules=[export_schedule(program, export)],
                       sensors=[email_sensor(program, job, daily) for job in jobs])
