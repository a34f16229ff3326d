"""The instance's event log (dagster.yaml): Dagster's SQLite storage in the same files, which frees a step's
output when the step ends, keeps each file's connection open, and records what Dagster's records."""
from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

from dagster import (AssetCheckResult, AssetCheckSpec, AssetKey, AssetRecordsFilter, DagsterInstance,
                     DailyPartitionsDefinition, Definitions, Output, asset, define_asset_job)
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef

from music_feedback.instance.sqlite_event_log import MAX_ENGINES, EventLogStorage
from music_feedback.runner import execute_in_process

REPO_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
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


JOB = define_asset_job("payload_job", selection=[payload, summary], partitions_def=DAYS)
DEFS = Definitions(assets=[payload, summary], jobs=[JOB])


def _instance(home: Path, monkeypatch, yaml_text: str) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml_text)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def _stock_yaml() -> str:
    """The repo's instance settings without the event_log_storage block: Dagster's own storage."""
    lines, skip = [], False
    for line in REPO_YAML.read_text().splitlines():
        if line.startswith("event_log_storage:"):
            skip = True
        elif skip and line and not line.startswith(" "):
            skip = False
        if not skip:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _run_twice(instance) -> list:
    """The same partition twice, the collector off: the second materialization is the one whose
    asset-key row already exists."""
    job = DEFS.resolve_job_def("payload_job")
    SEEN_ALIVE.clear()
    ALIVE.clear()
    gc.collect()
    gc.disable()
    try:
        results = [execute_in_process(job, "2026-11-02", instance, {}) for _ in range(2)]
    finally:
        gc.enable()
    return results


def test_a_step_output_is_freed_when_its_step_ends(tmp_path, monkeypatch):
    instance = _instance(tmp_path / "home", monkeypatch, REPO_YAML.read_text())
    assert isinstance(instance.event_log_storage, EventLogStorage)
    results = _run_twice(instance)
    assert all(r.success for r in results)
    assert SEEN_ALIVE == [0, 0]


def test_dagsters_own_storage_keeps_it_until_a_full_collection(tmp_path, monkeypatch):
    """Why the class exists (and how this file's first test would see a regression): Dagster's storage
    catches an IntegrityError when an asset's row exists (its planned event made it), and the error's
    traceback keeps the step's stack, output included, in a reference cycle."""
    instance = _instance(tmp_path / "home", monkeypatch, _stock_yaml())
    assert not isinstance(instance.event_log_storage, EventLogStorage)
    _run_twice(instance)
    assert SEEN_ALIVE == [1, 2]


def _history(home: Path, runs: list) -> dict:
    """What the UI reads back, through a fresh instance on the files (another process's view)."""
    reader = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    ids = [r.run_id for r in runs]
    mats = reader.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("payload")), limit=10).records
    checks = reader.event_log_storage.get_asset_check_execution_history(
        check_key=AssetCheckSpec("has_rows", asset="payload").key, limit=10)
    latest = reader.get_asset_records([AssetKey("payload")])[0].asset_entry.last_materialization_record
    return {"materialized": sorted((ids.index(m.run_id), m.partition_key) for m in mats),
            "latest": ids.index(latest.run_id),
            "summary_latest": ids.index(reader.get_latest_materialization_event(AssetKey("summary")).run_id),
            "checks": sorted((ids.index(c.run_id), c.status.value, c.partition or "") for c in checks),
            "events": [[e.dagster_event_type for e in reader.all_logs(i)] for i in ids]}


def test_it_records_what_dagsters_storage_records_in_the_same_files(tmp_path, monkeypatch):
    job, days = DEFS.resolve_job_def("payload_job"), ("2026-11-01", "2026-11-02", "2026-11-02")
    stock = _instance(tmp_path / "stock", monkeypatch, _stock_yaml())
    stock_runs = [execute_in_process(job, day, stock, {}) for day in days]
    # the first run through Dagster's storage, the others through ours, in the same files
    first = execute_in_process(job, days[0], _instance(tmp_path / "ours", monkeypatch, _stock_yaml()), {})
    ours = _instance(tmp_path / "ours", monkeypatch, REPO_YAML.read_text())
    our_runs = [first, *(execute_in_process(job, day, ours, {}) for day in days[1:])]
    assert all(r.success for r in stock_runs + our_runs)
    expected = _history(tmp_path / "stock", stock_runs)
    assert expected["latest"] == 2 and len(expected["materialized"]) == 3
    assert _history(tmp_path / "ours", our_runs) == expected
    fresh = _instance(tmp_path / "fresh", monkeypatch, REPO_YAML.read_text())  # ours from the first event on
    fresh_runs = [execute_in_process(job, day, fresh, {}) for day in days]
    assert _history(tmp_path / "fresh", fresh_runs) == expected


def test_engines_are_kept_for_the_recent_files_only(tmp_path):
    storage = EventLogStorage(str(tmp_path / "runs"))
    for i in range(MAX_ENGINES + 8):
        with storage.run_connection(f"run{i}") as conn:
            conn.exec_driver_sql("SELECT 1")
    assert len(storage._engines) == MAX_ENGINES
    assert "run0" not in storage._engines and f"run{MAX_ENGINES + 7}" in storage._engines
    with storage.run_connection("run0") as conn:  # an evicted file opens again
        assert conn.exec_driver_sql("SELECT count(*) FROM event_logs").scalar() == 0


def _log(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(error_info=None, level="INFO", user_message=message, run_id=run_id, timestamp=time.time())


def test_a_watcher_in_another_process_sees_each_event_as_it_is_stored(tmp_path):
    """The UI watches a run's file for modification; the writer keeps its connection open, so no checkpoint
    modifies the file, and each write touches it instead."""
    writer, ui = EventLogStorage(str(tmp_path / "runs")), EventLogStorage(str(tmp_path / "runs"))
    seen: list[str] = []
    writer.store_event(_log("run1", "first"))
    def seen_by_ui(entry, cursor):
        seen.append(entry.user_message)
    ui.watch("run1", None, seen_by_ui)
    try:
        for message in ("second", "third"):
            writer.store_event(_log("run1", message))
            deadline = time.monotonic() + 10
            while message not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert message in seen, f"the watcher did not see {message!r} (saw {seen})"
    finally:
        ui.end_watch("run1", seen_by_ui)
        ui.dispose()
        writer.dispose()


def test_a_file_keeps_one_connection_until_disposed(tmp_path):
    """No checkpoint and WAL deletion per event; disposing (the process's end) closes it, which
    checkpoints the WAL into the file, and what was stored is all there."""
    storage = EventLogStorage(str(tmp_path / "runs"))
    ids = set()
    for i in range(5):
        storage.store_event(_log("run1", f"event {i}"))
        with storage.run_connection("run1") as conn:
            ids.add(id(conn.connection.dbapi_connection))
    assert len(ids) == 1
    assert (tmp_path / "runs" / "run1.db-wal").exists()
    storage.dispose()
    assert not (tmp_path / "runs" / "run1.db-wal").exists()
    reader = EventLogStorage(str(tmp_path / "runs"))
    assert [e.user_message for e in reader.get_logs_for_run("run1")] == [f"event {i}" for i in range(5)]


def test_wipe_closes_the_files_it_deletes(tmp_path):
    storage = EventLogStorage(str(tmp_path / "runs"))
    storage.store_event(_log("run1", "before"))
    storage.wipe()
    assert not (tmp_path / "runs" / "run1.db").exists()
    storage.store_event(_log("run1", "after"))
    assert [e.user_message for e in storage.get_logs_for_run("run1")] == ["after"]


def test_a_present_table_is_looked_up_once_until_wipe(tmp_path, monkeypatch):
    """Dagster asks whether a table exists before each check result and tagged materialization, each time
    through a new connection; the answer yes is remembered, and a no is asked again."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    asked: list[str] = []
    original = SqliteEventLogStorage.has_table
    monkeypatch.setattr(SqliteEventLogStorage, "has_table", lambda self, name: asked.append(name) or original(self, name))
    storage = EventLogStorage(str(tmp_path / "runs"))
    assert all(storage.has_table("asset_check_executions") for _ in range(3))
    assert not any(storage.has_table("no_such_table") for _ in range(2))
    assert asked == ["asset_check_executions", "no_such_table", "no_such_table"]
    storage.wipe()
    assert storage.has_table("asset_check_executions")  # wipe empties the tables, and asks again
    storage.dispose()


def _schema(db: Path) -> dict:
    import sqlite3
    with sqlite3.connect(db) as conn:
        return {"objects": conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall(),
                "alembic": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
                "journal": conn.execute("PRAGMA journal_mode").fetchone()}


def test_a_new_runs_file_is_what_dagster_would_have_made(tmp_path):
    """A run's file is copied from a template made once, not created and stamped anew each run: the same
    tables, indexes, alembic revision and WAL mode as Dagster's own, and the template is not a run."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    stock, ours = SqliteEventLogStorage(str(tmp_path / "stock")), EventLogStorage(str(tmp_path / "ours"))
    for storage in (stock, ours):
        for run in ("run1", "run2"):
            storage.store_event(_log(run, f"{run} started"))
    ours.dispose()
    assert len(list((tmp_path / "ours").glob(".run-template-*.sqlite"))) == 1
    assert not list((tmp_path / "ours").glob("*.tmp"))
    for run in ("run1", "run2"):
        assert _schema(tmp_path / "ours" / f"{run}.db") == _schema(tmp_path / "stock" / f"{run}.db")
        assert [e.user_message for e in ours.get_logs_for_run(run)] == [f"{run} started"]
    assert sorted(ours.get_all_run_ids()) == ["run1", "run2"]


def test_a_batch_of_events_is_stored_whole_or_not_at_all(tmp_path, monkeypatch):
    storage = EventLogStorage(str(tmp_path / "runs"))
    storage.store_event_batch([_log("run1", f"event {i}") for i in range(3)])
    assert [e.user_message for e in storage.get_logs_for_run("run1")] == [f"event {i}" for i in range(3)]
    original = EventLogStorage.prepare_insert_event

    def failing(self, event):
        if event.user_message == "bad":
            raise RuntimeError("disk full")
        return original(self, event)
    monkeypatch.setattr(EventLogStorage, "prepare_insert_event", failing)
    try:
        storage.store_event_batch([_log("run2", "good"), _log("run2", "bad")])
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failing event did not fail the batch")
    assert storage.get_logs_for_run("run2") == []
    storage.store_event(_log("run2", "after"))  # the lock and the connections are free again
    assert [e.user_message for e in storage.get_logs_for_run("run2")] == ["after"]
    storage.dispose()


def test_a_stamped_file_is_not_set_up_again(tmp_path, monkeypatch):
    """A file with an alembic revision is what Dagster's set-up leaves alone; only a new index asks it."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    calls: list[str] = []
    original = SqliteEventLogStorage._initdb
    monkeypatch.setattr(SqliteEventLogStorage, "_initdb",
                        lambda self, engine, for_index_shard=False: calls.append(Path(engine.url.database).name)
                        or original(self, engine, for_index_shard))
    first = EventLogStorage(str(tmp_path / "runs"))
    first.store_event(_log("run1", "one"))
    first.dispose()
    assert calls.count("index.db") == 1 and "run1.db" not in calls  # the run's file came from the template
    calls.clear()
    second = EventLogStorage(str(tmp_path / "runs"))  # another process's view: nothing is set up again
    second.store_event(_log("run1", "two"))
    assert calls == []
    assert [e.user_message for e in second.get_logs_for_run("run1")] == ["one", "two"]
    second.dispose()
