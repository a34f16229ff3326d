"""UNLOAD for big extracts: the statement (unit), reading the manifest and Parquet files back from S3
(moto's server) as the cursor reads the same day, the settings checked at start-up, and the switch from
a cursor to UNLOAD above the configured row count."""
from __future__ import annotations

import io
import json

import boto3
import polars as pl
import pytest

from music_feedback.programs.loader import load_programs
from music_feedback_tools.standins.postgres import redshift_env
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
from music_feedback.warehouse.unload import quote_literal, read_manifest, run_prefix, unload_statement
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/unload"


@pytest.mark.unit
def test_the_unload_statement_quotes_the_query():
    sql = "SELECT a FROM track_plays\n WHERE genre = 'r&b' AND note = 'it''s \\ here'"
    stmt = unload_statement(sql, "s3://b/x/part_", ROLE)
    assert stmt == ("UNLOAD ('SELECT a FROM track_plays WHERE genre = ''r&b'' AND note = ''it''''s \\\\ here''') "
                    "TO 's3://b/x/part_' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
                    "FORMAT AS PARQUET MANIFEST ALLOWOVERWRITE")
    assert quote_literal("x") == "'x'"
    a, b = run_prefix("s3://b/unload/"), run_prefix("s3://b/unload")
    assert a.startswith("s3://b/unload/") and a.endswith("/part_") and a != b  # one prefix per run


@pytest.mark.unit
def test_the_bound_extract_survives_quoting():
    """The shipped extract, bound for a day, is the UNLOAD literal's content once its quotes are undone."""
    sql = " ".join(bind_batch_window(load_programs()[0].connector.config.query, BATCH_DAY).split())
    literal = unload_statement(sql, "s3://b/x/part_", ROLE).split("UNLOAD (", 1)[1].split(") TO 's3://", 1)[0]
    assert "DATE ''2026-" in literal and literal[0] == literal[-1] == "'"
    assert literal[1:-1].replace("''", "'") == sql


def put_parquet(s3, bucket: str, key: str, frame: pl.DataFrame) -> dict:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    return {"url": f"s3://{bucket}/{key}", "mandatory": True,
            "meta": {"content_length": len(buf.getvalue()), "record_count": frame.height}}


def test_an_unloaded_day_reads_back_as_the_cursor_reads_it(postgres_warehouse, small_warehouse, moto_endpoint,
                                                            monkeypatch):
    for k, v in redshift_env(postgres_warehouse).items():
        monkeypatch.setenv(k, v)
    wh = RedshiftWarehouse.from_env()
    sql = bind_batch_window(load_programs()[0].connector.config.query, BATCH_DAY)
    by_cursor = wh.fetch(sql)
    assert by_cursor.height > 10
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="unload-read")
    # One file per slice, in Parquet's own physical types (nanosecond timestamps, 64-bit integers).
    half = by_cursor.height // 2
    as_written = [part.with_columns(pl.col(pl.Datetime).cast(pl.Datetime("ns")), pl.col(pl.Int32).cast(pl.Int64))
                  for part in (by_cursor[:half], by_cursor[half:])]
    entries = [put_parquet(s3, "unload-read", f"day/part_000{i}_part_00.parquet", part)
               for i, part in enumerate(as_written)]
    s3.put_object(Bucket="unload-read", Key="day/part_manifest", Body=json.dumps({"entries": entries}))
    got = read_manifest("s3://unload-read/day/part_manifest", s3, wh.schema_of(sql))
    cols = by_cursor.columns
    assert got.schema == by_cursor.schema
    assert got.sort(cols).equals(by_cursor.sort(cols))
    assert got.sort(cols).equals(DuckDBWarehouse(path=str(small_warehouse)).fetch(sql).sort(cols))

    s3.put_object(Bucket="unload-read", Key="empty/part_manifest", Body=json.dumps({"entries": []}))
    empty = read_manifest("s3://unload-read/empty/part_manifest", s3, wh.schema_of(sql))
    assert empty.height == 0 and empty.schema == by_cursor.schema  # an empty day keeps its columns
    with pytest.raises(WarehouseError, match="lacks column\\(s\\) played_at"):
        s3.put_object(Bucket="unload-read", Key="short/part_manifest", Body=json.dumps({"entries": [
            put_parquet(s3, "unload-read", "short/p.parquet", by_cursor.drop("played_at"))]}))
        read_manifest("s3://unload-read/short/part_manifest", s3, by_cursor.schema)
    with pytest.raises(WarehouseError, match="s3://unload-read/none/part_manifest cannot be read"):
        read_manifest("s3://unload-read/none/part_manifest", s3)


def test_unload_settings_are_checked_at_start_up(postgres_server, monkeypatch):
    for k, v in redshift_env(postgres_server).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS", "10")
    with pytest.raises(WarehouseError, match="MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS is set.*"
                                             "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI .* is unset; "
                                             "MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE .* is unset"):
        RedshiftWarehouse.from_env()
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI", "unload-bucket/extract")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE", "unload-role")
    with pytest.raises(WarehouseError, match="'unload-bucket/extract' is not an s3://bucket/prefix/ URI; "
                                             ".*'unload-role' is not an IAM role ARN"):
        RedshiftWarehouse.from_env()


def test_only_reads_of_the_plays_table_are_counted_for_unload(postgres_server, monkeypatch):
    for k, v in redshift_env(postgres_server).items():
        monkeypatch.setenv(k, v)
    wh = RedshiftWarehouse.from_env()
    assert wh._is_extract("SELECT a FROM track_plays WHERE x") and wh._is_extract('select a\n  from\n "track_plays"')
    assert not wh._is_extract("SELECT a FROM track_plays_archive") and not wh._is_extract("SELECT a FROM listeners")


def test_an_extract_over_the_threshold_goes_through_unload(postgres_server, monkeypatch):
    for k, v in redshift_env(postgres_server).items():
        monkeypatch.setenv(k, v)
    conn = postgres_server.connect()
    conn.cursor().execute("DROP TABLE IF EXISTS track_plays; CREATE TABLE track_plays AS "
                          "SELECT g AS listener_id FROM generate_series(1, 50) g")
    conn.close()
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS", "10")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI", "s3://unload-test/extract/")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE", ROLE)
    wh = RedshiftWarehouse.from_env()
    assert wh.fetch("SELECT listener_id FROM track_plays WHERE listener_id <= 10").height == 10  # under: a cursor
    with pytest.raises(WarehouseError, match='syntax error at or near "UNLOAD"'):  # Postgres has no UNLOAD
        wh.fetch("SELECT listener_id FROM track_plays")
