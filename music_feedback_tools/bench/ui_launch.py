"""`ui_launch_batch_s`: the daily job for one partition launched as the Dagster UI launches it.

`music_feedback.launch.DagsterServer` (`dagster dev`: the webserver and the daemon, as `make ui` starts
them, and what `music-feedback run` launches through) serves the code location of workspace.yaml on an
instance of the bench's own; the run is submitted through the webserver's GraphQL API with Dagster's public
client (the UI's launch mutation), queued by the instance's QueuedRunCoordinator, dequeued by the daemon
and executed by a run worker process that the code server starts. The figure is submission to the run's end, in seconds; the run
must succeed. Starting `dagster dev` is not counted (the UI is already up when someone clicks Launch).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from music_feedback import runner, settings
from music_feedback.launch import DagsterServer


def _instance_home() -> Path:
    """An instance of the bench's own (its data home's `ui_launch/dagster_home`): a second daemon on an
    instance that `make ui` may be serving would dequeue that instance's runs too."""
    home = settings.data_home() / "ui_launch" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(runner.REPO_DAGSTER_YAML, home / "dagster.yaml")
    return home


def measure(job_name: str, partition: str) -> dict:
    """Launch `job_name` for `partition` through the UI's path; the figures, or `ui_launch_failed`."""
    home = _instance_home()
    log_path = settings.data_home() / "ui_launch" / "dagster_dev.log"
    instance = DagsterInstance.from_config(str(home))
    server = DagsterServer(instance, log_path, env={**os.environ, "DAGSTER_HOME": str(home)})
    try:
        with server:
            server.wait_ready()
            submitted = time.time()
            run_id = server.submit(job_name, runner.QUIET, runner.partition_tags(job_name, partition))
            run = server.wait(run_id)
            record = instance.get_run_record_by_id(run_id)
    except Exception as exc:  # the other figures stand; this one says why it is missing
        print(f"ui launch: {exc} (see {log_path})", file=sys.stderr)
        return {"ui_launch_batch_s": None, "ui_launch_failed": str(exc)[:300]}
    finally:
        instance.dispose()
    if run.status != DagsterRunStatus.SUCCESS:
        print(f"ui launch: run {run_id} ended {run.status.value} (see {log_path})", file=sys.stderr)
        return {"ui_launch_batch_s": None, "ui_launch_failed": f"run {run_id} ended {run.status.value}"}
    return {"ui_launch_batch_s": round(record.end_time - submitted, 2),
            # submission to the run worker's start: the queue (the daemon's dequeue interval), the code
            # server's new process and its import of the definitions
            "ui_launch_start_s": round(record.start_time - submitted, 2),
            "ui_launch_run_s": round(record.end_time - record.start_time, 2)}
