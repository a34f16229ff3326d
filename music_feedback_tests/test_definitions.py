"""The definitions load, in Dagster's own validator and without importing Great Expectations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dagster_definitions_validate(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # validate needs an existing instance folder
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_definitions_do_not_import_great_expectations():
    code = ("import sys; from music_feedback.definitions import defs; "
            "assert 'great_expectations' not in sys.modules; print(len(list(defs.resolve_all_asset_keys())))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the batch and model assets (11), the day's operations (email, export, feedback, playlist scores and
    # playlists, metrics, cleanup: 7) and the warehouse tables (7)
    assert int(proc.stdout.strip()) == 11 + 7 + 7


def test_jobs_and_schedules():
    from music_feedback.definitions import defs
    job = defs.resolve_job_def("music_feedback_daily_batch")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("music_feedback_daily_batch_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert defs.resolve_schedule_def("music_feedback_weekly_retrain").cron_schedule == "0 4 * * 0"

    for name in ("music_feedback_daily_batch_schedule", "music_feedback_weekly_retrain"):
        assert defs.resolve_schedule_def(name).description
    # email waits for the stored batch and each marketplace's send time: a sensor, not a clock schedule
    email = defs.resolve_sensor_def("music_feedback_email_when_stored")
    assert email.job_name == "music_feedback_email_delivery" and "stored" in email.description
    assert not [s.name for s in defs.schedules if s.name.startswith("music_feedback_email")]


def test_every_schedule_and_sensor_starts_stopped():
    """The README says so and says how to turn them on."""
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    from music_feedback.definitions import defs
    assert {s.name for s in defs.schedules if s.default_status != DefaultScheduleStatus.STOPPED} == set()
    assert {s.name for s in defs.sensors if s.default_status != DefaultSensorStatus.STOPPED} == set()
    readme = (ROOT / "README.md").read_text()
    assert "dagster schedule start" in readme and "`sensor start`" in readme


def test_lineage_shows_the_warehouse_tables_each_stage_reads():
    from dagster import AssetKey

    from music_feedback.definitions import defs
    graph = defs.resolve_asset_graph()
    parents = graph.get(AssetKey(["music_feedback", "filtered_candidates"])).parent_keys
    assert {AssetKey(["warehouse", "listeners"]), AssetKey(["warehouse", "feedback_requests"])} <= parents
    assert AssetKey(["warehouse", "track_plays"]) in graph.get(AssetKey(["music_feedback", "raw_streams"])).parent_keys
    spec = graph.get(AssetKey(["warehouse", "listeners"]))
    assert not spec.is_materializable and "opted_out" in str(spec.metadata["dagster/column_schema"])


def test_partitions_start_at_the_warehouse_first_day(data_home):
    from music_feedback.assets.common import daily_partitions
    from music_feedback.programs.loader import load_programs
    from music_feedback_tests.conftest import SMALL
    parts = daily_partitions(load_programs()[0])
    assert parts.get_first_partition_key() == SMALL.start_date.isoformat()
