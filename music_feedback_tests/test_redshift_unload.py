"""UNLOAD for big extracts: the statement (unit), reading the manifest and Parquet files back from S3
(moto's server), and the switch from a cursor to UNLOAD above the configured row count."""
from __future__ import annotations

import io
import json

import boto3
import polars as pl
import pytest

from music_feedback.standins.postgres import redshift_env
from music_feedback.warehouse.port import WarehouseError
from music_feedback.warehouse.redshift_warehouse import RedshiftWarehouse
from music_feedback.warehouse.unload import quote_literal, read_manifest, run_prefix, unload_statement


def test_the_unload_statement_quotes_the_query():
    sql = "SELECT a FROM track_plays\n WHERE genre = 'r&b' AND note = 'it''s \\ here'"
    stmt = unload_statement(sql, "s3://b/x/part_", "arn:aws:iam::123456789012:role/unload")
    assert stmt == ("UNLOAD ('SELECT a FROM track_plays WHERE genre = ''r&b'' AND note = ''it''''s \\\\ here''') "
                    "TO 's3://b/x/part_' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
                    "FORMAT AS PARQUET MANIFEST ALLOWOVERWRITE")
    assert quote_literal("x") == "'x'"
    a, b = run_prefix("s3://b/unload/"), run_prefix("s3://b/unload")
    assert a.startswith("s3://b/unload/") and a.endswith("/part_") and a != b  # one prefix per run


def test_the_manifest_files_are_read_back_from_s3(moto_endpoint):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="unload-test")
    parts = [pl.DataFrame({"listener_id": [1, 2], "score": [0.5, 0.25]}),
             pl.DataFrame({"listener_id": [3], "score": [1.0]})]
    entries = []
    for i, frame in enumerate(parts):
        buf = io.BytesIO()
        frame.write_parquet(buf)
        s3.put_object(Bucket="unload-test", Key=f"run/part_000{i}_part_00.parquet", Body=buf.getvalue())
        entries.append({"url": f"s3://unload-test/run/part_000{i}_part_00.parquet", "mandatory": True,
                        "meta": {"content_length": len(buf.getvalue()), "record_count": frame.height}})
    s3.put_object(Bucket="unload-test", Key="run/part_manifest", Body=json.dumps({"entries": entries}))
    got = read_manifest("s3://unload-test/run/part_manifest", s3)
    assert got.sort("listener_id").to_dicts() == pl.concat(parts).sort("listener_id").to_dicts()
    s3.put_object(Bucket="unload-test", Key="empty/part_manifest", Body=json.dumps({"entries": []}))
    assert read_manifest("s3://unload-test/empty/part_manifest", s3).height == 0
    with pytest.raises(WarehouseError, match="s3://unload-test/none/part_manifest cannot be read"):
        read_manifest("s3://unload-test/none/part_manifest", s3)


def test_an_extract_over_the_threshold_goes_through_unload(postgres_server, monkeypatch):
    for k, v in redshift_env(postgres_server).items():
        monkeypatch.setenv(k, v)
    conn = postgres_server.connect()
    conn.cursor().execute("DROP TABLE IF EXISTS track_plays; CREATE TABLE track_plays AS "
                          "SELECT g AS listener_id FROM generate_series(1, 50) g")
    conn.close()
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_ROWS", "10")
    wh = RedshiftWarehouse.from_env()
    with pytest.raises(WarehouseError, match="MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI or .*UNLOAD_IAM_ROLE is unset"):
        wh.fetch("SELECT listener_id FROM track_plays")
    assert wh.fetch("SELECT listener_id FROM track_plays WHERE listener_id <= 10").height == 10  # under: a cursor
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_S3_URI", "s3://unload-test/extract/")
    monkeypatch.setenv("MUSIC_FEEDBACK_REDSHIFT_UNLOAD_IAM_ROLE", "arn:aws:iam::123456789012:role/unload")
    with pytest.raises(WarehouseError, match='syntax error at or near "UNLOAD"'):  # Postgres has no UNLOAD
        RedshiftWarehouse.from_env().fetch("SELECT listener_id FROM track_plays")
