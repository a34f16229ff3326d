"""One run per partition; a killed run does not stay STARTED, and a re-run completes the day."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, instance_for_test

from music_feedback.run_guard import (HOST_TAG, PARTITION_TAG, PID_TAG, RunInProgressError, partition_lock,
                                      settle_in_progress)
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
JOB = "music_feedback_daily_batch"


def _started_run(instance, pid: int):
    import socket
    from dagster._core.test_utils import create_run_for_test
    run = create_run_for_test(instance, job_name=JOB, status=DagsterRunStatus.STARTED,
                              tags={PARTITION_TAG: BATCH_DAY.isoformat(), PID_TAG: str(pid),
                                    HOST_TAG: socket.gethostname()})
    return run


def test_a_dead_run_is_failed_and_a_live_one_refuses():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with instance_for_test() as instance:
        gone = _started_run(instance, dead.pid)
        assert settle_in_progress(instance, JOB, BATCH_DAY.isoformat()) == [gone.run_id]
        assert instance.get_run_by_id(gone.run_id).status == DagsterRunStatus.FAILURE
        live = _started_run(instance, os.getpid())
        with pytest.raises(RunInProgressError, match=rf"partition {BATCH_DAY} is already running \(run {live.run_id}"):
            settle_in_progress(instance, JOB, BATCH_DAY.isoformat())


def test_the_partition_lock_refuses_a_second_holder(tmp_path):
    with partition_lock(tmp_path, JOB, "2026-11-23"):
        with pytest.raises(RunInProgressError, match="already running in another process"):
            with partition_lock(tmp_path, JOB, "2026-11-23"):
                pass
        with partition_lock(tmp_path, JOB, "2026-11-22"):  # another day is free
            pass


def test_the_instance_config_monitors_runs_and_limits_each_partition(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 3600
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    finally:
        instance.dispose()


@pytest.mark.graph
def test_a_run_killed_mid_way_is_failed_and_the_rerun_completes(data_home, small_warehouse, monkeypatch):
    env = {**os.environ, "DAGSTER_HOME": str(data_home / "dagster_home")}
    # in this process, which the guard's pid tags name (launched runs have the queue's limit and the daemon's monitoring)
    cmd = [sys.executable, "-m", "music_feedback.cli", "run", "--in-process", "--date", BATCH_DAY.isoformat()]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # put back after the test: the session's own
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            if (data_home / "assets" / "music_feedback" / "raw_streams").exists():  # the daily run is under way
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait()
        instance = DagsterInstance.get()
        killed = instance.get_run_records(RunsFilter(job_name=JOB))[0].dagster_run
        assert killed.status == DagsterRunStatus.STARTED  # what kill -9 leaves behind
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr + done.stdout
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        assert "succeeded" in done.stdout
        instance.dispose()
    finally:
        if first.poll() is None:
            first.kill()


def test_a_day_outside_the_partitions_is_refused_with_the_range(data_home):
    from datetime import date

    from music_feedback import runner
    from music_feedback.definitions import build_definitions
    from music_feedback.programs.loader import load_programs
    with instance_for_test() as instance:
        with pytest.raises(ValueError, match=r"2020-01-01 is not a partition of music_feedback_daily_batch "
                                             r"\(partitions: 2026-11-01 to"):
            runner.run_batch(build_definitions(), load_programs()[0], date(2020, 1, 1), instance)
