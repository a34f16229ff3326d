"""UNLOAD for big extracts: the statement (unit), reading the manifest and Parquet files back from S3
(moto's server) as the cursor reads the same day, the settings checked at start-up, and the switch from
a cursor to UNLOAD above the configured row count."""
from __future__ import annotations

import io
import json
import re
import time

import boto3
import polars as pl
import pytest
from pydantic import PrivateAttr

from music_feedback.programs.loader import load_programs
from music_feedback_tools.standins.postgres import redshift_env
from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse
from music_feedback.warehouse.port import WarehouseError, bind_batch_window
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
from music_feedback.warehouse.unload import (DEFAULT_READERS, DEFAULT_ROWS, quote_literal, read_manifest, run_prefix,
                                             unload_statement)
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


class UnloadingPostgres(RedshiftWarehouse):
    """The PostgreSQL stand-in with Redshift's UNLOAD: the statement's query runs on PostgreSQL and its rows
    are written to S3 (moto's server) as Redshift writes them: one Parquet file per slice, in Parquet's own
    physical types, and a manifest listing them. Every other statement and read is the real adapter's."""
    slices: int = 4
    _statements = PrivateAttr(default_factory=list)

    def execute(self, sql: str) -> None:
        found = re.fullmatch(r"UNLOAD \('(.*)'\) TO '(s3://[^']+)' IAM_ROLE '[^']+' FORMAT AS PARQUET MANIFEST "
                             r"ALLOWOVERWRITE", sql, re.S)
        if not found:
            return super().execute(sql)
        self._statements.append(sql)
        query = found.group(1).replace("''", "'").replace("\\\\", "\\")
        rows = self._stream(query)
        bucket, prefix = found.group(2)[len("s3://"):].split("/", 1)
        s3 = boto3.client("s3", region_name="us-east-1")
        size = -(-rows.height // self.slices) or 1
        entries = [put_parquet(s3, bucket, f"{prefix}{i:04d}_part_00.parquet",
                               part.with_columns(pl.col(pl.Datetime).cast(pl.Datetime("ns")),
                                                 pl.col(pl.Int32).cast(pl.Int64)))
                   for i, part in enumerate(rows.iter_slices(size))]
        s3.put_object(Bucket=bucket, Key=f"{prefix}manifest", Body=json.dumps({"entries": entries}))


def observe_reads(client, latency_s: float) -> list[tuple[str, float, float]]:
    """(key, start, end) of every data file GET on `client`, each given `latency_s` of network delay (a
    botocore hook: loopback to moto answers faster than S3 does, which would hide whether reads overlap)."""
    spans: list = []

    def start(params, context, **_):
        if not params["Key"].endswith("manifest"):
            context["observed"] = (params["Key"], time.monotonic())
            time.sleep(latency_s)

    def end(context, **_):
        if "observed" in context:
            spans.append((*context["observed"], time.monotonic()))

    client.meta.events.register("before-parameter-build.s3.GetObject", start)
    client.meta.events.register("after-call.s3.GetObject", end)
    return spans


def test_unload_is_the_default_for_a_big_extract_when_a_location_is_set(postgres_server, moto_endpoint,
                                                                        monkeypatch):
    """Only the location and the role set: an extract above the default threshold goes through UNLOAD, its
    files are read concurrently, and the rows equal the cursor's; MUSIC_FEEDBACK_REDSHIFT_UNLOAD=off turns it off."""
    for k, v in redshift_env(postgres_server).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="unload-default")
    conn = postgres_server.connect()
    conn.cursor().execute(
        "DROP TABLE IF EXISTS track_plays; CREATE TABLE track_plays AS SELECT g AS listener_id, "
        "(g % 997)::int AS track_id, 'genre-' || (g % 13) AS genre, "
        "TIMESTAMP '2026-11-23 00:00:00' + g * INTERVAL '1 second' AS played_at "
        f"FROM generate_series(1, {DEFAULT_ROWS + 20_000}) g")
    conn.close()
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI", "s3://unload-default/unload/")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE", ROLE)
    sql = "SELECT listener_id, track_id, genre, played_at FROM track_plays WHERE genre <> 'it''s'"

    wh = UnloadingPostgres.from_env()
    assert wh.unload and wh.unload_threshold_rows == DEFAULT_ROWS and wh.unload_readers == DEFAULT_READERS
    spans = observe_reads(wh.s3_client(), latency_s=0.3)
    got = wh.fetch(sql)
    assert len(wh._statements) == 1 and wh._statements[0].startswith("UNLOAD (")  # the UNLOAD path ran
    by_cursor = wh._stream(sql)
    assert got.height == DEFAULT_ROWS + 20_000
    assert got.schema == by_cursor.schema and got.equals(by_cursor)  # the manifest's order is the slices' order
    # the four files were read at once: every read started before any of them ended
    assert len(spans) == 4
    assert max(s for _, s, _ in spans) < min(e for _, _, e in spans), spans

    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD", "off")
    off = UnloadingPostgres.from_env()
    assert not off.unload and off.fetch(sql).equals(by_cursor) and off._statements == []
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI")
    monkeypatch.delenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD")
    assert not UnloadingPostgres.from_env().unloads(sql)  # no location: the cursor


def test_the_day_extract_through_unload_equals_the_cursor(postgres_warehouse, moto_endpoint, monkeypatch):
    """The shipped extract, every extract unloaded (threshold 0): the same frame as the cursor's."""
    for k, v in redshift_env(postgres_warehouse).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="unload-day")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI", "s3://unload-day/unload")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE", ROLE)
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS", "0")
    wh = UnloadingPostgres.from_env()
    sql = bind_batch_window(load_programs()[0].connector.config.query, BATCH_DAY)
    got = wh.fetch(sql)
    by_cursor = wh._stream(sql)
    assert len(wh._statements) == 1 and by_cursor.height > 10
    cols = by_cursor.columns
    assert got.schema == by_cursor.schema and got.sort(cols).equals(by_cursor.sort(cols))
