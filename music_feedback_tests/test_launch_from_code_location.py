"""`music-feedback run` launches its runs from the code location, as the UI and the schedules do: each run
carries its code location (what the Overview timeline and Re-execute need), and nothing it started outlives
it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

REPO = Path(__file__).resolve().parent.parent


def _processes_on(home: Path) -> list[str]:
    """Command lines of the live processes whose DAGSTER_HOME is `home`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"DAGSTER_HOME={home}".encode() in environ and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


def test_make_runs_runs_are_launched_from_the_code_location(data_home):
    home = data_home / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "music_feedback.cli", "run", "--no-email",
                           "--date", BATCH_DAY.isoformat()], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "succeeded" in done.stdout
    assert _processes_on(home) == []  # the webserver, daemon, code server and run workers have stopped
    instance = DagsterInstance.from_config(str(home))
    try:
        runs = [r.dagster_run for r in instance.get_run_records(RunsFilter())]
        jobs = {run.job_name for run in runs}
        assert {"music_feedback_daily_batch", "music_feedback_train_models"} <= jobs, jobs
        for run in runs:
            assert run.status == DagsterRunStatus.SUCCESS
            origin = run.remote_job_origin  # what a launch from a loaded code location records
            assert origin is not None, f"{run.job_name} has no code location"
            assert origin.location_name == "music_feedback"
        batch = next(run for run in runs if run.job_name == "music_feedback_daily_batch")
        assert batch.tags["dagster/partition"] == BATCH_DAY.isoformat()
    finally:
        instance.dispose()

