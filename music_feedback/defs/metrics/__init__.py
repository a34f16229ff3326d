"""Metrics: the day's processing, delivery, business and technical metrics and its report; the job, its
23:59 schedule, and the sensor that re-runs a day once its holdout lift can be measured."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition, Definitions

from music_feedback.defs.metrics.assets import build_metrics
from music_feedback.defs.metrics.jobs import metrics_job
from music_feedback.defs.metrics.schedules import metrics_schedule
from music_feedback.defs.metrics.sensors import holdout_lift_sensor
from music_feedback.programs.model import Program


def program_defs(program: Program, daily: DailyPartitionsDefinition) -> Definitions:
    job = metrics_job(program, daily)
    return Definitions(assets=[build_metrics(program, daily)], jobs=[job],
                       schedules=[metrics_schedule(program, job)],
                       sensors=[holdout_lift_sensor(program, job, daily)])
