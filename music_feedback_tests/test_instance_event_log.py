"""The instance the project ships (dagster.yaml) and how `music-feedback run` records a run in it: Dagster's
own event log, public settings and APIs only, and a run that is the code location's job."""
from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path

import pytest
import yaml
from dagster import (AssetCheckResult, AssetCheckSpec, DagsterInstance, DailyPartitionsDefinition,
                     Definitions, Output, RunsFilter, asset, define_asset_job, in_process_executor)

from music_feedback import runner

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
DAYS = DailyPartitionsDefinition(start_date="2026-11-01")
ALIVE: weakref.WeakSet = weakref.WeakSet()  # the `payload` objects still in memory
SEEN_ALIVE: list[int] = []  # how many there were when `summary` ran, a step after `payload` ended


class Payload:
    def __init__(self, n: int):
        self.rows = list(range(n))


@asset(partitions_def=DAYS, check_specs=[AssetCheckSpec("has_rows", asset="payload")])
def payload():
    out = Payload(1000)
    ALIVE.add(out)
    yield Output(out)
    yield AssetCheckResult(check_name="has_rows", passed=bool(out.rows))


@asset(partitions_def=DAYS)
def summary(payload: Payload) -> int:
    SEEN_ALIVE.append(len(ALIVE))
    return len(payload.rows)


DEFS = Definitions(assets=[payload, summary], jobs=[define_asset_job(
    "payload_job", partitions_def=DAYS, executor_def=in_process_executor)])  # as the project's jobs


def _instance(home: Path, monkeypatch) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def test_the_package_uses_only_dagsters_public_api():
    """`dagster._...` is Dagster's private code: nothing outside the tests imports it, and the instance
    settings name public classes only."""
    private = re.compile(r"dagster\._")
    found = [f"{path.relative_to(REPO)}:{n}" for package in ("music_feedback", "music_feedback_tools")
             for path in sorted((REPO / package).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert found == []
    modules = re.findall(r"^\s*module:\s*(\S+)", (REPO / "dagster.yaml").read_text(), re.MULTILINE)
    assert modules and all(not private.match(m) for m in modules), modules


def test_the_instance_keeps_events_in_dagsters_own_sqlite_event_log(tmp_path, monkeypatch):
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "event_log_storage" not in config
    instance = _instance(tmp_path / "home", monkeypatch)
    try:
        storage = instance.event_log_storage
        assert type(storage).__name__ == "SqliteEventLogStorage"
        assert type(storage).__module__.startswith("dagster.")
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # a UI launch starts within ~1 s
    finally:
        instance.dispose()


def test_a_home_with_the_removed_event_log_gets_the_repositorys_settings(tmp_path, monkeypatch):
    """A DAGSTER_HOME set up before the project's own event log was removed still names it; the runner
    replaces those settings (Dagster's storage reads the same files) and the template it left."""
    home = tmp_path / "home"
    (home / "history" / "runs").mkdir(parents=True)
    (home / "dagster.yaml").write_text("event_log_storage:\n"
                                       "  module: music_feedback.instance.sqlite_event_log\n"
                                       "  class: EventLogStorage\n")
    (home / "history" / "runs" / ".run-template-1.13.27.sqlite").write_bytes(b"")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = runner.instance()
    try:
        assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
        assert not list((home / "history" / "runs").glob(".run-template-*"))
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
    finally:
        instance.dispose()


def test_a_run_is_the_code_locations_job_with_its_partitions_tags(tmp_path, monkeypatch):
    """What the UI reads: the job's snapshot as the code location has it, a code origin that rebuilds the
    job, the partition's and partition set's tags, and the labels a job's Runs tab lists runs by."""
    instance = _instance(tmp_path / "home", monkeypatch)
    try:
        job = DEFS.resolve_job_def("payload_job")
        result = runner.execute(job, "2026-11-02", instance, {"music_feedback/pid": "1"})
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.job_snapshot_id == job.get_job_snapshot_id()
        assert run.job_code_origin is not None and run.job_code_origin.job_name == "payload_job"
        expected = {"dagster/partition": "2026-11-02", "dagster/partition_set": "payload_job_partition_set",
                    "dagster/code_location": "music_feedback", "music_feedback/pid": "1"}
        assert expected.items() <= run.tags.items()
        runs_tab = instance.get_run_records(RunsFilter(
            job_name="payload_job", tags={".dagster/repository": "__repository__@music_feedback"}))
        assert [r.dagster_run.run_id for r in runs_tab] == [run.run_id]
        workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
        assert workspace["load_from"][0]["python_module"]["location_name"] == runner.CODE_LOCATION
        with pytest.raises(ValueError, match="2020-01-01 is not a partition of payload_job"):
            runner.execute(job, "2020-01-01", instance, {})
    finally:
        instance.dispose()


def _marker_defs(ran: list, tag: str) -> Definitions:
    @asset(partitions_def=DAYS)
    def marker() -> None:
        ran.append(tag)
    return Definitions(assets=[marker], jobs=[define_asset_job("marker_job", partitions_def=DAYS,
                                                               executor_def=in_process_executor)])


def test_each_definition_of_a_job_runs_as_given(tmp_path, monkeypatch):
    """Two definitions of one job in one process (the tests build one per data home) each run as given,
    though Dagster caches the definition of a reconstructable job."""
    instance = _instance(tmp_path / "home", monkeypatch)
    ran: list[str] = []
    try:
        for tag in ("first", "second", "first"):
            job = _marker_defs(ran, tag).resolve_job_def("marker_job")
            assert runner.execute(job, "2026-11-02", instance, {}).success
    finally:
        instance.dispose()
    assert ran == ["first", "second", "first"]


def test_with_dagsters_storage_a_steps_output_waits_for_a_full_collection(tmp_path, monkeypatch):
    """The cost docs/performance.md measures: materializing an asset that already has a row makes Dagster's
    SQLite storage catch an IntegrityError, whose traceback holds the step's frames, output included, in
    a reference cycle; so the output outlives its step until Python's next full collection. (If this
    fails because the count is 0, Dagster stopped doing it: update the docs.)"""
    instance = _instance(tmp_path / "home", monkeypatch)
    job = DEFS.resolve_job_def("payload_job")
    SEEN_ALIVE.clear()
    ALIVE.clear()
    gc.collect()
    gc.disable()
    try:
        results = [runner.execute(job, "2026-11-02", instance, {}) for _ in range(2)]
    finally:
        gc.enable()
        instance.dispose()
    assert all(r.success for r in results)
    assert SEEN_ALIVE == [1, 2]
    gc.collect()
    assert len(ALIVE) == 0
