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
    assert int(proc.stdout.strip()) == 11


def test_jobs_and_schedules():
    from music_feedback.definitions import defs
    job = defs.resolve_job_def("music_feedback_daily_batch")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("music_feedback_daily_batch_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert defs.resolve_schedule_def("music_feedback_weekly_retrain").cron_schedule == "0 4 * * 0"
