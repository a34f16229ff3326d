"""Dagster definitions: the assets, jobs and schedules of every program found."""
from __future__ import annotations

from dagster import (AssetSelection, DefaultScheduleStatus, Definitions,
                     build_schedule_from_partitioned_job, define_asset_job, in_process_executor)

from music_feedback.assets import daily_assets, model_assets
from music_feedback.assets.common import daily_partitions
from music_feedback.assets.cleanup import build_cleanup
from music_feedback.assets.email import build_email, email_job, email_sensor
from music_feedback.assets.export import build_export
from music_feedback.assets.metrics import build_metrics
from music_feedback.assets.playlists import build_playlists, feedback_spec
from music_feedback.operations import alert_on_run_failure, feedback_sensor, operation_jobs, operation_schedules
from music_feedback.operations import holdout_lift_sensor
from music_feedback.assets.models import weekly_partitions
from music_feedback.assets.warehouse_tables import warehouse_table_specs
from music_feedback.programs.loader import load_programs
from music_feedback.programs.model import Program, cron_fields
from music_feedback.resources import get_resources

TRAINING_CRON = "0 4 * * 0"  # Sunday 04:00 UTC, as the seed's weekly retrain


def daily_job_name(program: Program) -> str:
    return f"{program.slug}_daily_batch"


def training_job_name(program: Program) -> str:
    return f"{program.slug}_train_models"


def program_definitions(program: Program) -> Definitions:
    daily, models = daily_assets(program), model_assets(program)
    daily_job = define_asset_job(
        daily_job_name(program), selection=AssetSelection.assets(*daily),
        partitions_def=daily_partitions(program), executor_def=in_process_executor,
        description=f"{program.program_name}: extract, unify, filter, score and store day D's candidates.")
    train_job = define_asset_job(
        training_job_name(program), selection=AssetSelection.assets(*models), executor_def=in_process_executor,
        partitions_def=weekly_partitions(program),
        description=f"{program.program_name}: retrain the propensity and affinity models on the week's "
                    "outcomes; promote a challenger only when it beats the champion.")
    minute, hour = cron_fields(program.batch_schedule)
    channel_assets, channel_jobs, channel_schedules, channel_sensors = [], [], [], []
    parts = daily_partitions(program)
    if program.channel("email"):
        email = build_email(program, parts)
        channel_assets.append(email)
        channel_jobs.append(email_job(program, email))
        channel_sensors.append(email_sensor(program, channel_jobs[-1], parts))
    channel_assets += [build_export(program, parts), feedback_spec(program), *build_playlists(program, parts),
                       build_metrics(program, parts), build_cleanup(program)]
    ops = operation_jobs(program, parts)
    channel_jobs += list(ops.values())
    channel_schedules += operation_schedules(program, ops)
    sensors = [feedback_sensor(program, ops["playlists"]), holdout_lift_sensor(program, ops["metrics"], parts),
               *channel_sensors]
    return Definitions(
        assets=[*daily, *models, *channel_assets],
        jobs=[daily_job, train_job, *channel_jobs],
        sensors=sensors,
        schedules=[*channel_schedules,
            build_schedule_from_partitioned_job(
                daily_job, hour_of_day=hour, minute_of_hour=minute, default_status=DefaultScheduleStatus.STOPPED,
                description=f"{program.program_name}: every day at {hour:02d}:{minute:02d} UTC (batchSchedule), "
                            "runs the batch for the day that just ended."),
            build_schedule_from_partitioned_job(
                train_job, name=f"{program.slug}_weekly_retrain", day_of_week=0, hour_of_day=4, minute_of_hour=0,
                default_status=DefaultScheduleStatus.STOPPED,
                description=f"{program.program_name}: retrain both models every Sunday at 04:00 UTC on the "
                            "week's outcomes; a challenger replaces the champion only if it beats it."),
        ],
    )


def build_definitions() -> Definitions:
    programs = load_programs()
    sources = {p.connector.config.table for p in programs}
    from music_feedback.feedback.relay_job import feedback_events_relay, relay_schedule
    return Definitions.merge(*(program_definitions(p) for p in programs),
                             Definitions(assets=warehouse_table_specs(sources), jobs=[feedback_events_relay],
                                         schedules=[relay_schedule], sensors=[alert_on_run_failure],
                                         resources=get_resources()))


defs = build_definitions()
