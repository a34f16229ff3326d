"""One run per (job, partition) at a time, and no run left STARTED by a dead process.

`music-feedback run` executes in-process, outside the run coordinator's queue, so it guards itself with
Dagster's own run records: its runs carry the pid and host that execute them; before a run starts, a
STARTED run of the same partition whose process is gone is marked failed (kill -9 leaves it STARTED),
and one whose process is alive makes this run refuse. A file lock closes the race between two starts.
Runs launched from the UI or by schedules go through the QueuedRunCoordinator's tag limit on the
partition, and the daemon's run monitoring fails those that outlive `max_runtime_seconds`.
"""
from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

PID_TAG, HOST_TAG = "music_feedback/pid", "music_feedback/host"
PARTITION_TAG = "dagster/partition"


class RunInProgressError(RuntimeError):
    """Another live process is running the same job and partition."""


def run_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settle_in_progress(instance: DagsterInstance, job_name: str, partition: str) -> list[str]:
    """Fail the dead STARTED runs of this job+partition (returns their ids); refuse if a live one exists."""
    records = instance.get_run_records(RunsFilter(
        job_name=job_name, tags={PARTITION_TAG: partition},
        statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.QUEUED]))
    failed = []
    for record in records:
        run = record.dagster_run
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if pid and host == socket.gethostname() and not _alive(int(pid)):
            instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone (killed or crashed); "
                                            "a new run of the partition takes over")
            failed.append(run.run_id)
            continue
        where = f"pid {pid} on {host}" if pid else "launched from the Dagster UI or a schedule"
        raise RunInProgressError(
            f"{job_name} partition {partition} is already running (run {run.run_id}, {where}); wait for it to "
            "finish, or terminate it in the Dagster UI, then run again")
    return failed


@contextmanager
def partition_lock(lock_dir: Path, job_name: str, partition: str) -> Iterator[None]:
    """Held for the whole run; a second start on the same partition is refused at once, not queued."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{job_name}.{partition}.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgressError(f"{job_name} partition {partition} is already running in another process "
                                     f"on this machine (lock {path}); wait for it to finish") from None
        yield
