"""Launch runs from the code location, as the UI and the schedules do, so that they are first-class in the UI.

A run launched from a loaded code location carries its code location (its "remote origin"): the Overview
timeline shows it and the UI's Re-execute works. Dagster's public way to launch one from another process is
its webserver's GraphQL API (`dagster_graphql.DagsterGraphQLClient`, the UI's launch mutation); the instance's
QueuedRunCoordinator queues the run and a daemon starts it in a run worker of the code server.

`DagsterServer` starts what that needs for `music-feedback run`, on the instance of $DAGSTER_HOME and the
code location of workspace.yaml, on a free loopback port: `dagster dev` (the webserver and the daemon), or
only the webserver when a daemon already serves the instance (`make ui`'s: Dagster supports one per
instance). It starts in the background while the command prepares the day, and stops with the command.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
CODE_LOCATION = "music_feedback"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # the name of the repository a Definitions object makes
START_TIMEOUT_S = 300  # the webserver up with the code location loaded and, when started here, the daemon
QUEUE_TIMEOUT_S = 300  # a queued run that no daemon starts: say so instead of waiting for ever
DAEMON_ALIVE_S = 90  # a daemon heartbeat this recent means a daemon serves the instance (it beats every 30 s)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


class LaunchError(RuntimeError):
    """The code location's server could not start or a launched run could not be followed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_serving(instance: DagsterInstance) -> bool:
    """Whether a daemon's run queue beat recently on this instance (`make ui`, a deployment's daemon)."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < DAEMON_ALIVE_S


def _stop_with_parent() -> None:
    """In the child before exec: Linux sends it SIGINT (its Ctrl-C, a clean stop) when the command that
    started it dies, even by kill -9, so no webserver or daemon outlives `music-feedback run`."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


class DagsterServer:
    """The code location's webserver (and daemon, unless one already serves the instance), for launching.

    `start()` returns at once; `client()` waits until the server is ready. Use as a context manager."""

    def __init__(self, instance: DagsterInstance, log_path: Path, env: dict[str, str] | None = None):
        """`env`: the servers' environment (default: this process's); its DAGSTER_HOME must be `instance`'s."""
        self.instance, self.log_path, self.env = instance, log_path, env
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.with_daemon = False
        self._ready = False

    def start(self) -> DagsterServer:
        self.with_daemon = not daemon_serving(self.instance)
        bin_dir = Path(sys.executable).parent
        address = ["-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(self.port)]
        cmd = ([str(bin_dir / "dagster"), "dev", *address] if self.with_daemon
               else [str(bin_dir / "dagster-webserver"), *address])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            # its own process group: stopped with what it started (the daemon, the code server, run workers)
            self.proc = subprocess.Popen(cmd, env=self.env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_stop_with_parent)
        return self

    def __enter__(self) -> DagsterServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The webserver's GraphQL API, for what the public client has no method for (readiness)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"query": query, "variables": variables or {}}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    def wait_ready(self) -> None:
        """The code location loaded and, when this server runs the daemon, its run queue healthy."""
        if self._ready:
            return
        query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                 "locationOrLoadError { ... on PythonError { message } } } } } instance { daemonHealth { "
                 "daemonStatus(daemonType: \"QUEUED_RUN_COORDINATOR\") { healthy } } } }")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise LaunchError(f"the Dagster webserver exited before it was ready: see {self.log_path}")
            try:
                data = self.graphql(query)
            except (OSError, KeyError, TypeError, ValueError):
                time.sleep(0.25)  # not serving yet
                continue
            entries = data["workspaceOrError"]["locationEntries"]
            errors = [(e["locationOrLoadError"] or {}).get("message") for e in entries]
            if any(errors):
                raise LaunchError(f"the code location failed to load: {next(m for m in errors if m)}")
            healthy = data["instance"]["daemonHealth"]["daemonStatus"]["healthy"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries) and (healthy or not self.with_daemon):
                self._ready = True
                return
            time.sleep(0.25)
        raise LaunchError(f"the Dagster webserver was not ready within {START_TIMEOUT_S}s: see {self.log_path}")

    def submit(self, job_name: str, run_config: dict, tags: dict[str, str]) -> str:
        """Launch `job_name` from the code location; returns the run's id."""
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError  # lazy: ~0.3 s, only when launching
        self.wait_ready()
        client = DagsterGraphQLClient("127.0.0.1", port_number=self.port)
        try:
            return client.submit_job_execution(job_name, repository_location_name=CODE_LOCATION,
                                               repository_name=REPOSITORY, run_config=run_config, tags=tags)
        except DagsterGraphQLClientError as exc:
            raise LaunchError(f"launching {job_name} failed: {exc}") from None

    def wait(self, run_id: str, poll_s: float = 0.1):
        """Until the run ends; its DagsterRun. A run that stays queued names the missing daemon."""
        queued_since = time.monotonic()
        while True:
            run = self.instance.get_run_by_id(run_id)
            if run is None:
                raise LaunchError(f"run {run_id} is not in the instance of DAGSTER_HOME")
            if run.status in FINISHED:
                return run
            if run.status in (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED):
                if time.monotonic() - queued_since > QUEUE_TIMEOUT_S:
                    raise LaunchError(f"run {run_id} stayed queued for {QUEUE_TIMEOUT_S}s: no daemon starts the "
                                      "instance's runs (is the daemon of `make ui` still running?)")
            time.sleep(poll_s)

    def stop(self) -> None:
        """What it started, as Ctrl-C in its terminal would (killed if still running a minute later); then
        what outlives it in its process group (the code server waits for a heartbeat that no longer comes)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return  # the group is empty
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)
