"""The run-failure alert: one line (job, partition, error) in data/alerts.jsonl for every failed run."""
from __future__ import annotations

import json
import time

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from music_feedback import settings


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
