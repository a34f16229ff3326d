"""Past one process: the deployed instance's PostgreSQL storage (run, event and schedule) and queued run
coordinator (two runs at once here, one per partition), runs launched as their own processes. Two
daily partitions run at the same time and both complete; a second launch of a partition that is running
waits for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from music_feedback import runner
from music_feedback.definitions import build_definitions
from music_feedback.programs.loader import load_programs
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

ROOT = Path(__file__).resolve().parent.parent
DAYS = [BATCH_DAY.replace(day=BATCH_DAY.day - 1).isoformat(), BATCH_DAY.isoformat()]


def instance_yaml() -> dict:
    """deploy/dagster.yaml with what needs AWS swapped out: runs launch as local processes instead of ECS
    tasks, compute logs stay local, and the test server has no TLS. Storage and coordinator are the real ones."""
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    deployed["storage"]["postgres"]["postgres_db"]["params"]["sslmode"] = "disable"
    deployed["run_coordinator"]["config"].update(max_concurrent_runs=2, dequeue_interval_seconds=1)
    for section in ("run_launcher", "compute_logs"):
        deployed.pop(section)
    return deployed


def launch(env: dict, day: str) -> None:
    out = subprocess.run([sys.executable, "-m", "dagster", "job", "launch", "-w", str(ROOT / "workspace.yaml"),
                          "-j", "music_feedback_daily_batch", "--tags", json.dumps({"dagster/partition": day})],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def daily(inst: DagsterInstance) -> list:
    return [r for r in inst.get_runs() if r.job_name == "music_feedback_daily_batch"]


@pytest.fixture
def pg_instance(postgres_server, tmp_path, monkeypatch, small_warehouse):
    db = f"dagster_{os.getpid()}_{int(time.time())}"
    postgres_server.create_database(db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml()))
    data = tmp_path / "data"
    pg = postgres_server
    env = {**os.environ, "DAGSTER_HOME": str(home), "MUSIC_FEEDBACK_HOME": str(data),
           "MUSIC_FEEDBACK_WAREHOUSE": str(small_warehouse), "DAGSTER_PG_HOST": pg.host, "DAGSTER_PG_PORT": str(pg.port),
           "DAGSTER_PG_USER": pg.user, "DAGSTER_PG_PASSWORD": pg.password, "DAGSTER_PG_DB": db}
    env.pop("MUSIC_FEEDBACK_ENV", None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with DagsterInstance.from_config(str(home)) as inst:
        program = load_programs()[0]
        runner.ensure_models(build_definitions(), program, inst, day=BATCH_DAY)  # the weekly job, done first
        yield inst, env


def test_two_partitions_run_at_once_on_a_postgres_instance(pg_instance):
    inst, env = pg_instance
    for day in DAYS + [DAYS[1]]:  # the third launch repeats a partition: it must wait for the first of it
        launch(env, day)
    assert [r.status for r in daily(inst)] == [DagsterRunStatus.QUEUED] * 3  # nothing runs before the daemon
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                               str(ROOT / "workspace.yaml")], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = daily(inst)
            if all(r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in runs):
                break
            time.sleep(1)
    finally:
        daemon.terminate()
        daemon.wait(30)
    runs = sorted(daily(inst), key=lambda r: inst.get_run_stats(r.run_id).start_time or 0)
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * 3, [(r.run_id, r.status) for r in runs]
    spans = {r.run_id: (inst.get_run_stats(r.run_id).start_time, inst.get_run_stats(r.run_id).end_time) for r in runs}
    first, second, third = runs
    assert {first.tags["dagster/partition"], second.tags["dagster/partition"]} == set(DAYS)
    # The two days overlapped: each started before the other ended, in its own process.
    assert spans[second.run_id][0] < spans[first.run_id][1]
    # The repeat of a partition started only after the run of that partition ended.
    same = next(r for r in (first, second) if r.tags["dagster/partition"] == third.tags["dagster/partition"])
    assert spans[third.run_id][0] >= spans[same.run_id][1]
