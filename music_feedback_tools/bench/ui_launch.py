"""`ui_launch_batch_s`: the daily job for one partition launched as the Dagster UI launches it.

`dagster dev` (the webserver and the daemon, as `make ui` starts them) serves the code location of
workspace.yaml on an instance of the bench's own; the run is submitted through the webserver's GraphQL
API with Dagster's public client (`dagster_graphql.DagsterGraphQLClient`, the UI's launch mutation),
queued by the instance's QueuedRunCoordinator, dequeued by the daemon and executed by a run worker
process that the code server starts. The figure is submission to the run's end, in seconds; the run
must succeed. Starting `dagster dev` is not counted (the UI is already up when someone clicks Launch).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from music_feedback import runner, settings

WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
START_TIMEOUT_S = 300  # `dagster dev` up, its code location loaded and its daemon's run queue polled
RUN_TIMEOUT_S = 900
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """The webserver's GraphQL API, for what the public client has no method for (daemon health, run
    times)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _wait_until_ready(port: int, proc: subprocess.Popen) -> None:
    """The webserver answers with the code location loaded, and the daemon's queued-run loop is healthy."""
    deadline = time.monotonic() + START_TIMEOUT_S
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } instance { "
             "daemonHealth { daemonStatus(daemonType: \"QUEUED_RUN_COORDINATOR\") { healthy } } } }")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`dagster dev` exited with {proc.returncode} before it was ready")
        try:
            data = _graphql(port, query)
            locations = data["workspaceOrError"]["locationEntries"]
            if (locations and all(e["loadStatus"] == "LOADED" for e in locations)
                    and data["instance"]["daemonHealth"]["daemonStatus"]["healthy"]):
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass  # not serving yet
        time.sleep(0.5)
    raise RuntimeError(f"`dagster dev` was not ready within {START_TIMEOUT_S}s")


def _instance_home() -> Path:
    """An instance of the bench's own (its data home's `ui_launch/dagster_home`): a second daemon on an
    instance that `make ui` may be serving would dequeue that instance's runs too."""
    home = settings.data_home() / "ui_launch" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(runner.REPO_DAGSTER_YAML, home / "dagster.yaml")
    return home


def measure(job_name: str, partition: str) -> dict:
    """Launch `job_name` for `partition` through the UI's path; the figures, or `ui_launch_failed`."""
    from dagster_graphql import DagsterGraphQLClient
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(_instance_home())}
    log_path = settings.data_home() / "ui_launch" / "dagster_dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE),
                                 "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_ready(port, proc)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        submitted = time.time()
        run_id = client.submit_job_execution(
            job_name, repository_location_name=runner.CODE_LOCATION, repository_name=runner.REPOSITORY,
            run_config=runner.QUIET, tags=runner.partition_tags(job_name, partition))
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (status := client.get_run_status(run_id).value) not in FINISHED:
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} was still {status} after {RUN_TIMEOUT_S}s")
            time.sleep(0.1)
        times = "query($id: ID!) { runOrError(runId: $id) { ... on Run { startTime endTime } } }"
        run = _graphql(port, times, {"id": run_id})["runOrError"]
    except Exception as exc:  # the other figures stand; this one says why it is missing
        print(f"ui launch: {exc} (see {log_path})", file=sys.stderr)
        return {"ui_launch_batch_s": None, "ui_launch_failed": str(exc)[:300]}
    finally:
        _stop(proc)
    if status != "SUCCESS":
        print(f"ui launch: run {run_id} ended {status} (see {log_path})", file=sys.stderr)
        return {"ui_launch_batch_s": None, "ui_launch_failed": f"run {run_id} ended {status}"}
    return {"ui_launch_batch_s": round(run["endTime"] - submitted, 2),
            # submission to the run worker's start: the queue (the daemon's dequeue interval), the code
            # server's new process and its import of the definitions
            "ui_launch_start_s": round(run["startTime"] - submitted, 2),
            "ui_launch_run_s": round(run["endTime"] - run["startTime"], 2)}


def _stop(proc: subprocess.Popen) -> None:
    """`dagster dev` and what it started (its own process group), as Ctrl-C in its terminal would; the
    group is killed if `dagster dev` has not ended a minute later."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its leader is still running: the group is still this one
        proc.wait()
