"""The warehouse port's contract, run against every adapter: the embedded DuckDB file, and Redshift's
adapter (dagster-aws's RedshiftClientResource over psycopg2) on a real PostgreSQL server loaded with the
same generated warehouse. Every read the batch makes must give the same frame on both."""
from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from music_feedback.policy.contact import contact_signals
from music_feedback.programs.loader import load_programs
from music_feedback.standins.postgres import redshift_env
from music_feedback.transforms.validate import malformed_rows_query
from music_feedback.warehouse import queries
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
from music_feedback_tests.conftest import BATCH_DAY

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


@pytest.fixture(params=["duckdb", "redshift-on-postgres"])
def warehouse(request, small_warehouse, loaded):
    if request.param == "duckdb":
        return DuckDBWarehouse(path=str(small_warehouse))
    return redshift(loaded)


@pytest.fixture(scope="module")
def reference(small_warehouse):
    return DuckDBWarehouse(path=str(small_warehouse))


def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.schema
    assert a.sort(a.columns).equals(b.sort(b.columns)), (a.height, b.height)


READS = {
    "extract": lambda wh: wh.fetch(bind_batch_window(load_programs()[0].connector.config.query, BATCH_DAY)),
    "malformed": lambda wh: wh.fetch(bind_batch_window(malformed_rows_query("track_plays"), BATCH_DAY)),
    "listeners": lambda wh: queries.listener_context(wh),
    "tracks": lambda wh: queries.track_context(wh),
    "prior_feedback": lambda wh: queries.prior_feedback_pairs(wh, P, BATCH_DAY),
    "recent_requests": lambda wh: queries.recent_request_counts(wh, P, BATCH_DAY),
    "feedback_counts": lambda wh: queries.feedback_counts(wh, P, BATCH_DAY),
    "artist_ratings": lambda wh: queries.artist_ratings(wh, P, BATCH_DAY),
    "genre_affinity": lambda wh: queries.genre_affinity(wh),
    "training_outcomes": lambda wh: queries.training_outcomes(wh, P),
    "contact_signals": lambda wh: contact_signals(wh, P, BATCH_DAY),
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
    with pytest.raises(WarehouseError, match="ran past 0.2 s and was cancelled \\(MUSIC_FEEDBACK_REDSHIFT_QUERY_TIMEOUT_S\\)"):
        wh.fetch("SELECT pg_sleep(3) AS slept")


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


def test_missing_settings_are_named(monkeypatch):
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_HOST", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_USER", raising=False)
    with pytest.raises(WarehouseError, match="needs MUSIC_FEEDBACK_REDSHIFT_HOST and MUSIC_FEEDBACK_REDSHIFT_USER"):
        RedshiftWarehouse.from_env()
