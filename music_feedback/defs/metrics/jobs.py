"""The metrics job: the day's metrics, published, and its report."""
from __future__ import annotations

from dagster import DailyPartitionsDefinition

from music_feedback.defs.automation import asset_job
from music_feedback.programs.model import Program


def metrics_job(program: Program, daily: DailyPartitionsDefinition):
    return asset_job(program, "metrics", ["daily_metrics"], "the day's metrics and report (23:59 UTC).",
                     daily=daily)
