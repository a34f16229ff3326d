"""Schedules at the seed's times and zones, the feedback-volume sensor, run-failure alerts, weekly cleanup."""
from __future__ import annotations

import json
import time

import pytest
from dagster import (DagsterInstance, build_run_status_sensor_context, build_sensor_context, instance_for_test,
                     materialize)

from music_feedback.definitions import build_definitions
from music_feedback.defs.operations.assets import build_cleanup
from music_feedback.defs.operations.checks import build_cleanup_check
from music_feedback.defs.operations.sensors import alert_on_run_failure
from music_feedback.feedback import Submission
from music_feedback.programs.loader import load_programs
from music_feedback.resources import candidate_store, feedback_store, get_resources
from music_feedback_tests.service_support import candidate, frame

pytestmark = pytest.mark.unit


def test_every_operation_is_scheduled_at_the_seeds_time(data_home):
    defs = build_definitions()
    expected = {"music_feedback_daily_batch_schedule": "0 2 * * *", "music_feedback_export_schedule": "30 3 * * *",
                "music_feedback_playlists_schedule": "0 18 * * *", "music_feedback_metrics_schedule": "59 23 * * *",
                "music_feedback_weekly_cleanup": "0 1 * * 0", "music_feedback_weekly_retrain": "0 4 * * 0"}
    for name, cron in expected.items():
        schedule = defs.resolve_schedule_def(name)
        assert schedule.cron_schedule == cron and schedule.description, name
    # Email and the lift's re-run wait for their data: sensors, not clock schedules.
    assert {s.name for s in defs.sensors} >= {"alert_on_run_failure", "music_feedback_feedback_volume",
                                              "music_feedback_email_when_stored", "music_feedback_holdout_lift"}
    assert not any("email" in s.name for s in defs.schedules)


def test_feedback_volume_sensor_requests_a_recount(data_home):
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("music_feedback_feedback_volume")
    store = feedback_store()
    program = load_programs()[0]
    for i in range(program.playlists.recalculate_after - 1):
        store.submit(Submission(program.program_id, i, 7, 1, "email", "2026-11-23", f"sensor-{i:05d}", time.time()))
    resources = {"feedback_store": store}  # a parameter of the sensor, as the daemon passes the location's
    with instance_for_test() as instance:
        def tick(cursor=None):
            return sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=cursor,
                                                             definitions=defs, resources=resources))
        assert not tick().run_requests
        store.submit(Submission(program.program_id, 10**6, 7, 1, "email", "2026-11-23", "sensor-last", time.time()))
        result = tick()
        assert len(result.run_requests) == 1 and result.cursor
        assert not tick(result.cursor).run_requests


def test_a_failed_run_writes_an_alert(data_home):
    from dagster import DagsterEventType, job, op

    @op
    def boom():
        raise ValueError("the warehouse is gone")

    @job
    def failing():
        boom()

    with instance_for_test() as instance:
        result = failing.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=failure, resources={"alert_sink": get_resources()["alert_sink"]}).for_run_failure()
        alert_on_run_failure(context)
    alert = json.loads((data_home / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["job"] == "failing" and alert["run_id"] == result.run_id
    assert alert["step"] == "boom" and alert["error"] == "ValueError: the warehouse is gone"


def test_weekly_cleanup_purges_and_checks_nothing_expired_is_served(data_home):
    program = load_programs()[0]
    store = candidate_store()
    now = int(time.time())
    store.put_batch(program.program_id, "2026-11-01", frame([candidate(1, 1, 0.9, expires_at=now - 10)]))
    store.put_batch(program.program_id, "2026-11-20", frame([candidate(2, 1, 0.9, expires_at=now + 3600),
                                                             candidate(3, 1, 0.8, expires_at=now - 5)]))
    result = materialize([build_cleanup(program), build_cleanup_check(program)], resources={"candidate_store": store},
                         instance=DagsterInstance.ephemeral())
    assert result.success
    mat = result.asset_materializations_for_node(f"{program.slug}__candidate_cleanup")[0]
    assert mat.metadata["removed"].value == 2 and mat.metadata["live_rows"].value == 1
    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["expired_rows_served"].value == 0
