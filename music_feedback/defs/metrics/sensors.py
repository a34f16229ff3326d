"""The holdout-lift sensor: re-runs batch day D's metrics once the warehouse holds its whole lift window
(plays through D+8), which the 23:59 run of D+1 never can."""
from __future__ import annotations

from datetime import date, timedelta

from dagster import (AssetRecordsFilter, DailyPartitionsDefinition, DefaultSensorStatus, RunRequest,
                     SensorDefinition, SensorEvaluationContext, SkipReason, sensor)

from music_feedback.defs.common import key
from music_feedback.defs.metrics.assets import LIFT_STATUS
from music_feedback.metrics.compute import LIFT_LAST_DAY, last_play_day, lift_window
from music_feedback.programs.model import Program
from music_feedback.warehouse.port import Warehouse

# Lift statuses a re-run cannot change: the window was complete, or the day asked nobody.
LIFT_FINAL = ("measured", "no comparison", "no requests")
# Days whose window completed longer ago than this are not looked at again each tick: re-run them by hand.
LIFT_LOOKBACK_DAYS = 28


def holdout_lift_sensor(program: Program, metrics_job,
                        partitions: DailyPartitionsDefinition) -> SensorDefinition:
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
