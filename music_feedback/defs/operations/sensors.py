"""The run-failure alert: for every failed run, the failing step and its own error (read from the run's
events in the instance), sent to the alert sink (data/alerts.jsonl on the embedded set, SNS on AWS)."""
from __future__ import annotations

import time

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from music_feedback.alerts.failure import failure_alert
from music_feedback.alerts.sink import AlertSink


@run_failure_sensor(name="alert_on_run_failure", default_status=DefaultSensorStatus.STOPPED,
                    description="Sends an alert (job, partition, failing step and its error) to the alert sink "
                                "(data/alerts.jsonl, or SNS on AWS) for every failed run.")
def alert_on_run_failure(context: RunFailureSensorContext, alert_sink: AlertSink) -> None:
    run = context.dagster_run
    alert = failure_alert(context.instance, run, context.failure_event.message, time.time())
    where = alert_sink.publish(alert)
    context.log.info(f"alert for run {run.run_id} ({alert['step'] or 'no step'}) sent to {where}")
