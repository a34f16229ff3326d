"""The day's scheduled operations around the batch: export, playlists, metrics, cleanup; the sensor that
recounts playlists when enough feedback arrived; the sensor that measures a day's holdout lift once its
window is in the warehouse; and the alert written for every failed run."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

from dagster import (AssetRecordsFilter, AssetSelection, DailyPartitionsDefinition, DefaultScheduleStatus,
                     DefaultSensorStatus, RunFailureSensorContext, RunRequest, SensorEvaluationContext, SkipReason,
                     build_schedule_from_partitioned_job, define_asset_job, in_process_executor, run_failure_sensor,
                     sensor)

from music_feedback import settings
from music_feedback.assets.common import key
from music_feedback.assets.metrics import LIFT_STATUS
from music_feedback.metrics.compute import LIFT_LAST_DAY, last_play_day, lift_window
from music_feedback.playlists.scoring import SCORED_AT
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse

# Lift statuses a re-run cannot change: the window was complete, or the day asked nobody.
LIFT_FINAL = ("measured", "no comparison", "no requests")
# Days whose window completed longer ago than this are not looked at again each tick: re-run them by hand.
LIFT_LOOKBACK_DAYS = 28


def operation_jobs(program: Program, daily) -> dict:
    def job(name: str, assets: list[str], description: str, partitioned: bool = True):
        return define_asset_job(f"{program.slug}_{name}", selection=AssetSelection.assets(*(key(program, a) for a in assets)),
                                partitions_def=daily if partitioned else None, executor_def=in_process_executor,
                                description=f"{program.program_name}: {description}")
    return {"export": job("export", ["s3_export"], "the day's candidates to the lake (03:30 UTC)."),
            "playlists": job("playlists", ["playlist_scores", "curated_playlists"],
                             "score tracks from feedback and move the curated playlists (18:00 UTC)."),
            "metrics": job("metrics", ["daily_metrics"], "the day's metrics and report (23:59 UTC)."),
            "cleanup": job("cleanup", ["candidate_cleanup"], "purge expired candidates (Sundays 01:00 UTC).",
                           partitioned=False)}


def operation_schedules(program: Program, jobs: dict) -> list:
    from dagster import ScheduleDefinition

    def daily(job, hour: int, minute: int, what: str):
        return build_schedule_from_partitioned_job(
            job, hour_of_day=hour, minute_of_hour=minute, default_status=DefaultScheduleStatus.STOPPED,
            description=f"{program.program_name}: {what} at {hour:02d}:{minute:02d} UTC for the day before.")
    # playlists run at the time their scores are taken as of, so a backfill scores what the schedule did
    return [daily(jobs["export"], 3, 30, "export"),
            daily(jobs["playlists"], SCORED_AT.hour, SCORED_AT.minute, "playlists"),
            daily(jobs["metrics"], 23, 59, "metrics and report"),
            ScheduleDefinition(name=f"{program.slug}_weekly_cleanup", job=jobs["cleanup"], cron_schedule="0 1 * * 0",
                               default_status=DefaultScheduleStatus.STOPPED,
                               description=f"{program.program_name}: purge expired candidates, Sundays 01:00 UTC.")]


def feedback_sensor(program: Program, playlist_job):
    threshold = program.playlists.recalculate_after

    @sensor(name=f"{program.slug}_feedback_volume", job=playlist_job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.STOPPED,
            description=f"Requests a playlist recount once {threshold:,} new answers have arrived since the last.")
    def feedback_volume(context: SensorEvaluationContext):
        from music_feedback.resources import feedback_store
        after = int(context.cursor or 0)
        count, newest = feedback_store().events_since(program.program_id, "feedback.", after)
        if count < threshold:
            return SkipReason(f"{count} new answer(s) since event {after}; waiting for {threshold}")
        context.update_cursor(str(newest))
        day = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
        return RunRequest(run_key=f"feedback-{newest}", partition_key=day,
                          tags={"music_feedback/trigger": f"{count} new answers"})

    return feedback_volume


def holdout_lift_sensor(program: Program, metrics_job, partitions: DailyPartitionsDefinition):
    """Re-runs daily_metrics for batch day D once the warehouse holds plays through D+8 and D's latest
    materialization says its lift is not measured yet: the 23:59 run of D+1 cannot measure it."""
    asset_key = key(program, "daily_metrics")

    @sensor(name=f"{program.slug}_holdout_lift", job=metrics_job, minimum_interval_seconds=3600,
            default_status=DefaultSensorStatus.STOPPED,
            description=f"Re-runs {program.program_name}'s metrics of batch day D once the warehouse holds plays "
                        f"through D+{LIFT_LAST_DAY}, so the holdout lift is measured over its whole window.")
    def holdout_lift(context: SensorEvaluationContext, warehouse: Warehouse):
        through = last_play_day(warehouse)
        if through is None:
            return SkipReason("the warehouse holds no plays yet")
        newest = through - timedelta(days=LIFT_LAST_DAY)  # the latest batch day whose window is complete
        day, requests = newest - timedelta(days=LIFT_LOOKBACK_DAYS), []
        while day <= newest:
            partition, day = day.isoformat(), day + timedelta(days=1)
            if not partitions.has_partition_key(partition):
                continue
            records = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
            if not records:
                continue  # never run: the metrics schedule (or a backfill) makes the day's first run
            status = records[0].asset_materialization.metadata.get(LIFT_STATUS)
            if getattr(status, "value", status) in LIFT_FINAL:
                continue
            first, last = lift_window(date.fromisoformat(partition))
            # once per day of plays: a failed re-run is tried again when the warehouse has grown
            requests.append(RunRequest(
                run_key=f"holdout-lift-{partition}-plays-through-{through}", partition_key=partition,
                tags={"music_feedback/trigger": f"holdout lift window {first}..{last} complete "
                                                f"(plays through {through})"}))
        if not requests:
            return SkipReason(f"the warehouse holds plays through {through}; no batch day up to {newest} "
                              "waits for its lift")
        return requests

    return holdout_lift


@run_failure_sensor(name="alert_on_run_failure", default_status=DefaultSensorStatus.STOPPED,
                    description="Writes an alert line (job, partition, error) to data/alerts.jsonl for every failed run.")
def alert_on_run_failure(context: RunFailureSensorContext) -> None:
    run = context.dagster_run
    alert = {"at": time.time(), "job": run.job_name, "run_id": run.run_id,
             "partition": run.tags.get("dagster/partition"), "error": context.failure_event.message}
    path = settings.data_home() / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(alert) + "\n")
