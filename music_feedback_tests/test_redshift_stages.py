"""The Redshift stage session, on PostgreSQL as the stand-in: the batch's extract -> unify -> filter chain
run as the assets run it (the same SQL builders, one session a stage, each stage reading the previous
one's stored output) gives the same kept pairs, decisions and check statistics as the DuckDB session on
the same generated day; stage outputs are kept as tables (replaced whole, never half-written) and streamed
to the IO manager's file; errors say what to change."""
from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import polars as pl
import psycopg2
import pytest

from music_feedback.defs.batch.checks import unify_stats_sql, window_stats_sql
from music_feedback.filters import build_chain
from music_feedback.programs.loader import load_programs
from music_feedback.transforms import warehouse_stages
from music_feedback.transforms.validate import malformed_rows_query
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.redshift_stage import (STAGE_SCHEMA_VAR, RedshiftStageSession, check_schema,
                                                     stage_table)
from music_feedback.warehouse.redshift_warehouse import TIMEOUT_VAR, RedshiftWarehouse
from music_feedback_tests.conftest import BATCH_DAY
from music_feedback_tools.standins.postgres import redshift_env

pytestmark = pytest.mark.integration

SCHEMA = "stage_test"
PARTITION = BATCH_DAY.isoformat()


@pytest.fixture(scope="module")
def program():
    return next(p for p in load_programs() if p.program_id == "music-feedback")


@pytest.fixture
def redshift(postgres_warehouse, monkeypatch):
    conn = postgres_warehouse.connect()
    try:
        conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    finally:
        conn.close()
    for k, v in redshift_env(postgres_warehouse).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(STAGE_SCHEMA_VAR, SCHEMA)
    return RedshiftWarehouse.from_env()


def own_history(raw: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A small synthetic ledger of the program's own, drawn from the day's plays so that it bites: pairs
    answered, contacts of the week (some listeners at or near the cap) and unsubscribes."""
    pairs = raw.select("listener_id", "track_id").unique().sort("listener_id", "track_id")
    listeners = pairs["listener_id"].unique().sort()
    return {
        "own_contacts": pl.DataFrame({"listener_id": listeners[10:60], "requests": [1, 2] * 25}).select(
            pl.col("listener_id").cast(pl.Int64), pl.col("requests").cast(pl.Int64)),
        "own_answered": pairs[::7].head(40).select(pl.col("listener_id").cast(pl.Int64),
                                                   pl.col("track_id").cast(pl.Int64)),
        "own_suppressed": pl.DataFrame({"listener_id": listeners[100:130].to_list()},
                                       schema={"listener_id": pl.Int64}),
    }


def run_day(warehouse, program, day: date, folder: Path, ledger=None) -> dict:
    """extract, unify and filter as their assets run them, each in its own session, outputs written as the
    IO manager writes them (FrameChunks.write to the stage's file); the checks' statistics too."""
    folder.mkdir(parents=True, exist_ok=True)
    slug, connector = program.slug, program.connector
    path = {n: [slug, n] for n in ("raw_streams", "rejected_streams", "unified_candidates",
                                   "filtered_candidates", "candidate_decisions")}
    files = {n: str(folder / f"{n}.parquet") for n in path}
    out = {"files": files}

    def write(chunks, name):
        chunks.write(files[name])
        out[f"{name}_rows"] = chunks.rows

    query = bind_batch_window(connector.config.query, day)
    malformed = bind_batch_window(malformed_rows_query(connector.config.table), day)
    with warehouse.stage_session() as stage:  # extract, as the asset runs it
        got = warehouse_stages.extract(stage, program, day, path["raw_streams"], path["rejected_streams"], PARTITION)
        out["reasons"] = got.rejected_by_reason
        write(got.raw, "raw_streams")
        write(got.rejected, "rejected_streams")
    with warehouse.stage_session() as stage:  # unify
        raw = stage.stored(path["raw_streams"], PARTITION, files["raw_streams"])
        out["raw_rows"], unified = warehouse_stages.unify(stage, raw, program, day, path["unified_candidates"], PARTITION)
        write(unified, "unified_candidates")
    chain = build_chain(program.filter_chain)
    ledger = ledger if ledger is not None else own_history(pl.read_parquet(files["raw_streams"]))
    with warehouse.stage_session() as stage:  # filter
        for name, frame in ledger.items():
            stage.upload(name, frame)
        unified = stage.stored(path["unified_candidates"], PARTITION, files["unified_candidates"])
        decided = warehouse_stages.filter_chain(stage, unified, chain, program, day, path["filtered_candidates"],
                                                path["candidate_decisions"], PARTITION)
        out["decision_counts"] = {(r, s): n for r, s, n in decided.counts.iter_rows()}
        out["guard"] = decided.guard
        write(decided.kept, "filtered_candidates")
        write(decided.decisions, "candidate_decisions")
    with warehouse.stage_session() as stage:  # the standalone checks' statistics, over the stored outputs
        raw = stage.stored(path["raw_streams"], PARTITION, files["raw_streams"])
        unified = stage.stored(path["unified_candidates"], PARTITION, files["unified_candidates"])
        as_ints = lambda row: {k: int(v) if v is not None else 0 for k, v in row.items()}  # noqa: E731
        out["window"] = as_ints(stage.fetch(window_stats_sql(raw, day)).row(0, named=True))
        out["unify"] = as_ints(stage.fetch(unify_stats_sql(raw, unified)).row(0, named=True))
        out["extracted"] = int(stage.fetch(f"SELECT (SELECT COUNT(*) FROM ({query}) q) + "
                                           f"(SELECT COUNT(*) FROM ({malformed}) m) AS n")["n"][0])
    out["ledger"] = ledger
    return out


@pytest.fixture(scope="module")
def duckdb_day(small_warehouse, program, tmp_path_factory):
    folder = tmp_path_factory.mktemp("duckdb_day")
    wh = DuckDBWarehouse(path=str(small_warehouse), spill_dir=str(folder / "spill"))
    return run_day(wh, program, BATCH_DAY, folder / "out")


def _pairs(path) -> list[tuple]:
    return sorted(pl.read_parquet(path).select("listener_id", "track_id").iter_rows())


def _decisions(path) -> list[tuple]:
    return sorted(pl.read_parquet(path).select("listener_id", "track_id", "filter", "reason").iter_rows())


def test_the_chain_on_redshift_decides_as_on_duckdb(redshift, duckdb_day, program, tmp_path):
    got = run_day(redshift, program, BATCH_DAY, tmp_path / "out", ledger=duckdb_day["ledger"])
    want = duckdb_day
    assert want["raw_streams_rows"] > 1000 and want["filtered_candidates_rows"] > 10
    assert want["candidate_decisions_rows"] > 100
    for name in ("raw_streams", "rejected_streams", "unified_candidates", "filtered_candidates",
                 "candidate_decisions"):
        assert got[f"{name}_rows"] == want[f"{name}_rows"], name
    assert got["reasons"] == want["reasons"]
    assert got["raw_rows"] == want["raw_rows"]
    assert got["decision_counts"] == want["decision_counts"]
    # The ledger bites: some removals are its doing.
    reasons = {r for (_, r) in want["decision_counts"]}
    assert {"already_gave_feedback", "opted_out"} <= reasons
    kept, decided = _pairs(got["files"]["filtered_candidates"]), _decisions(got["files"]["candidate_decisions"])
    assert kept == _pairs(want["files"]["filtered_candidates"])
    assert decided == _decisions(want["files"]["candidate_decisions"])
    # The checks' statistics, computed where each stage's output lives.
    assert got["window"] == want["window"] and got["unify"] == want["unify"] and got["guard"] == want["guard"]
    assert got["extracted"] == want["extracted"]
    assert got["window"]["valid_rows"] == want["raw_streams_rows"]
    assert all(v == 0 for k, v in got["unify"].items() if k != "missing_context") and \
        all(v == 0 for v in got["guard"].values())
    # The files the IO manager got hold the same rows, columns and dtypes as the embedded run's.
    for name in ("raw_streams", "rejected_streams", "unified_candidates", "filtered_candidates",
                 "candidate_decisions"):
        a, b = pl.read_parquet(got["files"][name]), pl.read_parquet(want["files"][name])
        assert a.schema == b.schema, name
        assert a.sort(a.columns).equals(b.sort(b.columns)), name
    # The kept pairs come in the order the filter asked for (a table has none of its own).
    assert kept == [tuple(r) for r in pl.read_parquet(got["files"]["filtered_candidates"])
                    .select("listener_id", "track_id").iter_rows()]
    # ... and are kept in the warehouse, where the next process finds them.
    conn = psycopg2.connect(**redshift.redshift.get_client().conn_args)
    try:
        with conn.cursor() as cur:
            table = stage_table([program.slug, "filtered_candidates"], PARTITION)
            cur.execute(f"SELECT COUNT(*) FROM {SCHEMA}.{table}")
            assert cur.fetchone()[0] == len(kept)
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'stage_new%%'",
                        (SCHEMA,))
            assert cur.fetchall() == []  # no table left under its building name
    finally:
        conn.close()


def test_an_output_is_replaced_whole_or_not_at_all(redshift, tmp_path):
    asset = ["replace_test", "numbers"]
    with redshift.stage_session() as stage:
        stage.output("SELECT 1 AS n UNION ALL SELECT 2", asset, PARTITION).write(str(tmp_path / "a.parquet"))
        assert stage.fetch(f"SELECT COUNT(*) AS c FROM {stage.stored(asset, PARTITION, 'x')}")["c"][0] == 2
        chunks = stage.output("SELECT 7 AS n", asset, PARTITION)
        chunks.write(str(tmp_path / "b.parquet"))
        assert chunks.rows == 1 and pl.read_parquet(tmp_path / "b.parquet")["n"].to_list() == [7]
        with pytest.raises(WarehouseError, match="division by zero"):  # fails half-way through its rows
            stage.output("SELECT 1 / (n - 3) AS n FROM (SELECT 4 AS n UNION ALL SELECT 3) x", asset,
                         PARTITION).write(str(tmp_path / "failed.parquet"))
        # The session goes on, and the table is the last good one.
        assert stage.fetch(f"SELECT n FROM {stage.stored(asset, PARTITION, 'x')}")["n"].to_list() == [7]
        empty = stage.output("SELECT n FROM (SELECT 1 AS n) x WHERE n > 1", asset, PARTITION)
        empty.write(str(tmp_path / "c.parquet"))
        assert empty.rows == 0 and pl.read_parquet(tmp_path / "c.parquet").columns == ["n"]


def test_an_output_left_half_read_does_not_block_the_session(redshift):
    asset = ["half_read", "numbers"]
    with redshift.stage_session() as stage:
        stage.chunk_rows = 10
        chunks = stage.output("SELECT g AS n FROM generate_series(1, 100) g", asset, PARTITION)
        first = next(iter(chunks.chunks))
        assert first.height == 10
        stage.create("after", "SELECT 5 AS n")  # closes the open stream first
        assert stage.fetch("SELECT n FROM after")["n"].to_list() == [5]


def test_uploads_are_session_tables_of_the_frame(redshift):
    frame = pl.DataFrame({"listener_id": list(range(12_345)), "requests": [1] * 12_345,
                          "day": [date(2026, 11, 23)] * 12_345, "name": ["o'neil"] * 12_345},
                         schema={"listener_id": pl.Int64, "requests": pl.Int32, "day": pl.Date, "name": pl.Utf8})
    with redshift.stage_session() as stage:
        stage.upload("own_contacts", frame)
        stage.upload("own_contacts", frame.head(3))  # replaced
        stage.upload("own_suppressed", pl.DataFrame(schema={"listener_id": pl.Int64}))
        got = stage.fetch("SELECT * FROM own_contacts ORDER BY listener_id")
        assert got.equals(frame.head(3))
        assert stage.fetch("SELECT COUNT(*) AS n FROM own_suppressed")["n"][0] == 0
        with pytest.raises(ValueError, match="not a stage table name"):
            stage.upload("listeners; DROP TABLE x", frame)
        stage.create("listeners_copy", "SELECT listener_id FROM listeners LIMIT 3")
    with redshift.stage_session() as stage:  # the session's tables went with it
        with pytest.raises(WarehouseError, match="own_contacts"):
            stage.fetch("SELECT * FROM own_contacts")


def test_stored_names_what_to_materialize(redshift):
    with redshift.stage_session() as stage:
        with pytest.raises(FileNotFoundError, match=r"materialize nobody/home for 2026-11-23"):
            stage.stored(["nobody", "home"], PARTITION, "/nowhere/home.parquet")


def test_the_default_stage_schema_is_the_connections(redshift, monkeypatch):
    monkeypatch.delenv(STAGE_SCHEMA_VAR)
    with RedshiftWarehouse.from_env().stage_session() as stage:
        assert stage.schema == "public"
    monkeypatch.setenv(STAGE_SCHEMA_VAR, "no_such_schema")
    with RedshiftWarehouse.from_env().stage_session() as stage:
        with pytest.raises(WarehouseError, match=r"create schema no_such_schema"):
            stage.output("SELECT 1 AS n", ["x", "y"], PARTITION).write(io.BytesIO())
    monkeypatch.setenv(STAGE_SCHEMA_VAR, "Bad-Name")
    with pytest.raises(WarehouseError, match=STAGE_SCHEMA_VAR):
        RedshiftWarehouse.from_env()


def test_a_statement_past_the_timeout_names_the_setting(redshift):
    slow = redshift.model_copy(update={"query_timeout_s": 0.2})
    with slow.stage_session() as stage:
        with pytest.raises(WarehouseError, match=TIMEOUT_VAR):
            stage.create("slow", "SELECT 1 AS s FROM (SELECT pg_sleep(2)) x")
        assert stage.fetch("SELECT 1 AS n")["n"][0] == 1  # the session goes on


@pytest.mark.unit
@pytest.mark.parametrize("exc, says", [
    (psycopg2.errors.DiskFull("could not extend file: No space left on device"), "node count"),
    (psycopg2.InternalError("Disk Full\nDETAIL: ..."), "node type"),
    (psycopg2.errors.OutOfMemory("out of memory"), "WLM"),
    (psycopg2.InternalError("Out of Memory: the query exceeded its memory"), "wlm_query_slot_count"),
    (psycopg2.errors.QueryCanceled("canceling statement due to statement timeout"), TIMEOUT_VAR),
])
def test_errors_say_what_to_change(exc, says):
    session = object.__new__(RedshiftStageSession)
    session._describe, session.schema = "Redshift warehouse u@h:5439/dev", "public"
    session._timeout_var = TIMEOUT_VAR
    session._wh = type("W", (), {"query_timeout_s": 600.0})()
    err = session._error(exc, "CREATE TABLE x AS SELECT 1")
    assert isinstance(err, WarehouseError) and says in str(err)


@pytest.mark.unit
def test_stage_table_names():
    assert stage_table(["music_feedback", "raw_streams"], "2026-11-23") == \
        "stage__music_feedback__raw_streams__2026_11_23"
    long = stage_table(["p" * 40, "candidate_decisions"], "2026-11-23")
    assert len(long) == 63 and long != stage_table(["p" * 40, "candidate_decisions"], "2026-11-24")
    assert check_schema(None) is None and check_schema("stages") == "stages"
    with pytest.raises(WarehouseError):
        check_schema("a;b")
