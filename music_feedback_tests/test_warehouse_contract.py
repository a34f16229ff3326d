"""The warehouse port's contract, run against every adapter: the embedded DuckDB file, and Redshift's
adapter (dagster-aws's RedshiftClientResource over psycopg2) on a real PostgreSQL server loaded with the
same generated warehouse. Every read the batch makes must give the same frame on both."""
from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from music_feedback.metrics.compute import later_plays
from music_feedback.policy.contact import batch_window, contact_signals
from music_feedback.programs.loader import load_programs
from music_feedback.scoring.outcomes import training_rows
from music_feedback_tools.standins.postgres import redshift_env
from music_feedback.transforms.validate import malformed_rows_query
from music_feedback.warehouse import queries
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.integration

P = "music-feedback"


@pytest.fixture(scope="module")
def loaded(postgres_warehouse):
    return postgres_warehouse


def redshift(server, monkeypatch=None, **env) -> RedshiftWarehouse:
    values = {**redshift_env(server), **env}
    mp = monkeypatch or pytest.MonkeyPatch()
    for k, v in values.items():
        mp.setenv(k, v)
    try:
        return RedshiftWarehouse.from_env()
    finally:
        if monkeypatch is None:
            mp.undo()


@pytest.fixture(params=["duckdb", "duckdb-in-a-run", "duckdb-held", "redshift-on-postgres",
                        "redshift-held"])
def warehouse(request, small_warehouse, loaded):
    if request.param == "duckdb":
        return DuckDBWarehouse(path=str(small_warehouse))
    if request.param.endswith("-held"):  # as the service keeps it: connections and schema between reads
        wh = DuckDBWarehouse(path=str(small_warehouse)) if request.param == "duckdb-held" else redshift(loaded)
        wh.hold()
        return wh
    if request.param == "duckdb-in-a-run":  # the tables' columns read once, as setup_for_execution does
        wh = DuckDBWarehouse(path=str(small_warehouse))
        wh.snapshot_schema()
        return wh
    return redshift(loaded)


@pytest.fixture
def counted(small_warehouse, tmp_path, monkeypatch):
    """A copy of the small warehouse, and the list of every duckdb.connect made from here on."""
    import shutil

    import duckdb

    path = tmp_path / "w.duckdb"
    shutil.copy(small_warehouse, path)
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    return path, opened, real_connect


def test_a_run_reads_the_schema_once_and_holds_no_connection(counted):
    """Schema look-ups in a run come from one read; after the run nothing holds the file (a read-only
    handle would keep `warehouse seed --force`, a writer, out), and the next run sees a new table."""
    from dagster import asset, materialize

    path, opened, real_connect = counted

    @asset
    def contract_checked(warehouse: DuckDBWarehouse) -> int:
        before = len(opened)
        for _ in range(5):
            warehouse.require_contract("plays", "track_plays")
        assert len(opened) == before  # every look-up answered from the run's one read
        return warehouse.fetch("SELECT COUNT(*) AS n FROM listeners")["n"][0]

    wh = DuckDBWarehouse(path=str(path))
    assert materialize([contract_checked], resources={"warehouse": wh}).success
    with real_connect(str(path)) as con:  # a writer gets in: nothing holds the file any more
        con.execute("CREATE TABLE added_later (x INTEGER)")
    assert wh.columns_of("added_later") == {"x"}


def test_a_session_shares_one_connection_and_closes_it(counted):
    """A step's look-ups inside `session()` open the file once; after the block a writer gets in."""
    path, opened, real_connect = counted
    wh = DuckDBWarehouse(path=str(path))
    wh.snapshot_schema()
    with wh.session():
        with wh.session():  # nested: still the one connection
            queries.listener_context(wh)
        queries.track_context(wh)
        wh.fetch("SELECT 1 AS x")
    assert len(opened) == 2  # the schema snapshot, then the session
    with real_connect(str(path)) as con:
        con.execute("CREATE TABLE added_later (x INTEGER)")
    assert wh.fetch("SELECT COUNT(*) AS n FROM added_later")["n"][0] == 0


def test_a_held_warehouse_opens_once_and_follows_a_replaced_file(counted):
    """The service's held warehouse reads through one connection from its threads, and a new file renamed
    over the old one (`warehouse seed --force`) is read from then on, with its own tables."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    path, opened, real_connect = counted
    wh = DuckDBWarehouse(path=str(path))
    wh.hold()
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: queries.listener_context(wh).height, range(20)))
    assert len(set(counts)) == 1 and counts[0] > 0 and len(opened) == 1
    fresh = path.with_name("fresh.duckdb")
    with real_connect(str(fresh)) as con:
        con.execute("CREATE TABLE listeners AS SELECT 1::BIGINT AS listener_id")
    os.replace(fresh, path)
    assert wh.fetch("SELECT COUNT(*) AS n FROM listeners")["n"][0] == 1
    assert wh.columns_of("listeners") == {"listener_id"} and len(opened) == 2


@pytest.fixture(scope="module")
def reference(small_warehouse):
    return DuckDBWarehouse(path=str(small_warehouse))


def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.schema
    assert a.sort(a.columns).equals(b.sort(b.columns)), (a.height, b.height)


def extract_sql(day) -> str:
    return bind_batch_window(load_programs()[0].connector.config.query, day)


READS = {
    "extract": lambda wh: wh.fetch(extract_sql(BATCH_DAY)),
    "malformed": lambda wh: wh.fetch(bind_batch_window(malformed_rows_query("track_plays"), BATCH_DAY)),
    "listeners": lambda wh: queries.listener_context(wh),
    "tracks": lambda wh: queries.track_context(wh),
    "prior_feedback": lambda wh: queries.prior_feedback_pairs(wh, P, BATCH_DAY),
    "recent_requests": lambda wh: queries.recent_request_counts(wh, P, *batch_window(BATCH_DAY)),
    "feedback_counts": lambda wh: queries.feedback_counts(wh, P, BATCH_DAY),
    "artist_ratings": lambda wh: queries.artist_ratings(wh, P, BATCH_DAY),
    "genre_affinity": lambda wh: queries.genre_affinity(wh),
    "training_outcomes": lambda wh: queries.training_outcomes(wh, P),
    "contact_signals": lambda wh: contact_signals(wh, P, batch_window(BATCH_DAY)),
    # the extract's row-count check on the day before, the retrain's history, the holdout's later plays
    "day_before_count": lambda wh: wh.fetch(
        f"SELECT COUNT(*) AS n FROM ({extract_sql(BATCH_DAY - timedelta(days=1))}) q"),
    "training_rows": lambda wh: training_rows(wh, P, None, [], BATCH_DAY)[0],
    "later_plays": lambda wh: later_plays(wh, wh.fetch("SELECT DISTINCT track_id FROM track_plays WHERE "
                                                       "track_id < 200")["track_id"].to_list(),
                                          BATCH_DAY - timedelta(days=6), BATCH_DAY + timedelta(days=1)),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_every_read_of_the_batch_gives_the_embedded_frame(warehouse, reference, read):
    got = READS[read](warehouse)
    assert got.height > 0 or read == "malformed"
    same(got, READS[read](reference))


def test_the_generator_metadata_and_the_contract_check(warehouse):
    assert warehouse.meta()["end_date"] == BATCH_DAY.isoformat()
    warehouse.require_contract("redshift-music-streams", "track_plays")
    with pytest.raises(WarehouseError, match="connector 'c': table 'no_such_table' does not exist"):
        warehouse.require("no_such_table", connector="c")
    with pytest.raises(WarehouseError, match="table 'tracks' .* is missing column\\(s\\) mood"):
        warehouse.require("tracks", ["track_id", "mood"], connector="c")


def test_an_empty_result_keeps_its_columns(warehouse):
    day = BATCH_DAY + timedelta(days=400)
    frame = warehouse.fetch(bind_batch_window(load_programs()[0].connector.config.query, day))
    assert frame.height == 0 and "listener_id" in frame.columns


def test_a_query_past_the_timeout_names_the_setting(loaded, monkeypatch):
    wh = redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S="0.2")
    heavy = "SELECT COUNT(*) AS n FROM track_plays a CROSS JOIN track_plays b WHERE a.genre <> b.genre"
    with pytest.raises(WarehouseError, match="ran past 0.2 s and was cancelled "
                                             "\\(MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S\\).*CROSS JOIN track_plays"):
        wh.fetch(heavy)
    assert wh.fetch("SELECT COUNT(*) AS n FROM tracks")["n"][0] > 0  # the next read is not affected


def test_wrong_credentials_and_endpoint_are_named(loaded, monkeypatch):
    with pytest.raises(WarehouseError, match="password authentication failed for user .*check "
                                             "MUSIC_FEEDBACK_REDSHIFT_USER and MUSIC_FEEDBACK_REDSHIFT_PASSWORD"):
        redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_PASSWORD="not-" + loaded.password).columns_of("tracks")
    with pytest.raises(WarehouseError, match="check MUSIC_FEEDBACK_REDSHIFT_DATABASE"):
        redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_DATABASE="nowhere").columns_of("tracks")
    with pytest.raises(WarehouseError, match="check MUSIC_FEEDBACK_REDSHIFT_USER and MUSIC_FEEDBACK_REDSHIFT_PASSWORD"):
        redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_USER="nobody").columns_of("tracks")
    with pytest.raises(WarehouseError, match="check MUSIC_FEEDBACK_REDSHIFT_HOST and MUSIC_FEEDBACK_REDSHIFT_PORT"):
        redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_PORT="9").columns_of("tracks")
    with pytest.raises(WarehouseError, match="MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S must be a number"):
        redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S="soon")


def test_the_password_comes_from_a_secrets_file(loaded, monkeypatch, tmp_path):
    secret = tmp_path / "redshift-password"
    secret.write_text(loaded.password + "\n")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_PASSWORD_FILE", str(secret))
    assert "listener_id" in redshift(loaded, monkeypatch, MUSIC_FEEDBACK_REDSHIFT_PASSWORD="").columns_of("listeners")
    secret.write_text("stale")
    with pytest.raises(WarehouseError, match="password authentication failed"):
        redshift(loaded, monkeypatch).columns_of("listeners")  # the file wins over the variable
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(WarehouseError, match="MUSIC_FEEDBACK_REDSHIFT_PASSWORD_FILE=.*missing cannot be read"):
        redshift(loaded, monkeypatch)


def test_missing_settings_are_named(monkeypatch):
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_HOST", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_USER", raising=False)
    with pytest.raises(WarehouseError, match="needs MUSIC_FEEDBACK_REDSHIFT_HOST and MUSIC_FEEDBACK_REDSHIFT_USER"):
        RedshiftWarehouse.from_env()
