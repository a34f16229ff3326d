"""The lake: a day replaced whole, in a local folder and on S3 with Glue partitions (moto's server)."""
from __future__ import annotations

import os

import boto3
import polars as pl
import pytest

from music_feedback.lake.local import LocalLake
from music_feedback.lake.port import PART, LakeError, parquet_bytes, split
from music_feedback.lake.s3 import S3Lake

pytestmark = pytest.mark.integration


def day(n: int, markets=("US", "DE")) -> pl.DataFrame:
    return pl.DataFrame({"listener_id": list(range(n)), "score": [i / n for i in range(n)],
                         "marketplace": [markets[i % len(markets)] for i in range(n)]})


@pytest.mark.unit
def test_local_day_is_replaced_whole(tmp_path):
    lake = LocalLake(root=str(tmp_path))
    lake.replace_day("candidates", "2026-11-23", split(day(10, ("US", "DE", "JP"))))
    assert sorted(p.name for p in (tmp_path / "candidates" / "run_date=2026-11-23").iterdir()) == [
        "marketplace=DE", "marketplace=JP", "marketplace=US"]
    lake.replace_day("candidates", "2026-11-23", split(day(4)))  # a re-run with fewer marketplaces
    got = lake.read_day("candidates", "2026-11-23")
    assert got.height == 4 and set(got["marketplace"]) == {"US", "DE"}
    assert not any((tmp_path / "_staging" / "candidates").iterdir())  # nothing left aside
    assert not (tmp_path / "candidates" / "_staging").exists()  # staging is never inside a table
    # hive readers see the layout and the partition columns
    hive = pl.scan_parquet(str(tmp_path / "candidates" / "run_date=*" / "*" / "*.parquet"), hive_partitioning=True).collect()
    assert hive.height == 4 and {"run_date", "marketplace"} <= set(hive.columns)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.unit
def test_read_only_lake_fails_clearly_and_keeps_the_day(tmp_path):
    lake = LocalLake(root=str(tmp_path))
    lake.replace_day("candidates", "2026-11-23", split(day(6)))
    os.chmod(tmp_path / "candidates", 0o500)
    try:
        with pytest.raises(LakeError, match="make the folder writable"):
            lake.replace_day("candidates", "2026-11-23", split(day(2)))
    finally:
        os.chmod(tmp_path / "candidates", 0o700)
    assert lake.read_day("candidates", "2026-11-23").height == 6


@pytest.mark.unit
def test_unwritable_lake_path_fails_clearly(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake should be")
    with pytest.raises(LakeError, match="cannot write candidates for 2026-11-23 in the lake folder"):
        LocalLake(root=str(blocker)).replace_day("candidates", "2026-11-23", split(day(3)))


def test_s3_day_replaced_and_glue_partitions_registered(moto_endpoint):
    kw = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    s3, glue = boto3.client("s3", **kw), boto3.client("glue", **kw)
    s3.create_bucket(Bucket="lake-test")
    glue.create_database(DatabaseInput={"Name": "feedback"})
    glue.create_table(DatabaseName="feedback", TableInput={
        "Name": "candidates", "PartitionKeys": [{"Name": "run_date", "Type": "string"},
                                                {"Name": "marketplace", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": "listener_id", "Type": "bigint"}],
                              "Location": "s3://lake-test/lake/candidates/",
                              "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                              "SerdeInfo": {"SerializationLibrary":
                                            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}})
    lake = S3Lake(bucket="lake-test", endpoint_url=moto_endpoint, glue_database="feedback")
    first = lake.replace_day("candidates", "2026-11-23", split(day(9, ("US", "DE", "JP"))))
    written = lake.replace_day("candidates", "2026-11-23", split(day(4)))  # again: JP goes
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="lake-test")["Contents"])
    generation = written[0].split("/generation=", 1)[1].split("/", 1)[0]
    assert generation not in first[0]  # a fresh prefix per replace; the old one is deleted after the switch
    assert keys == [f"lake/candidates/run_date=2026-11-23/generation={generation}/marketplace={m}/part-0.parquet"
                    for m in ("DE", "US")]
    assert lake.read_day("candidates", "2026-11-23").height == 4
    parts = glue.get_partitions(DatabaseName="feedback", TableName="candidates")["Partitions"]
    assert sorted(tuple(p["Values"]) for p in parts) == [("2026-11-23", "DE"), ("2026-11-23", "US")]
    for p in parts:
        assert p["StorageDescriptor"]["Location"] == (
            f"s3://lake-test/lake/candidates/run_date=2026-11-23/generation={generation}/marketplace={p['Values'][1]}/")


def test_s3_day_of_the_layout_before_generations_is_replaced(moto_endpoint):
    """A day written flat (`run_date=D/marketplace=M/`) with plain partitions reads, and its replace
    switches the partitions and deletes the flat files."""
    kw = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    s3, glue = boto3.client("s3", **kw), boto3.client("glue", **kw)
    s3.create_bucket(Bucket="lake-flat")
    glue.create_database(DatabaseInput={"Name": "flat"})
    lake = S3Lake(bucket="lake-flat", endpoint_url=moto_endpoint, glue_database="flat")
    lake.replace_day("c", "2026-11-22", split(day(2)))  # registers the table
    storage = glue.get_table(DatabaseName="flat", Name="c")["Table"]["StorageDescriptor"]
    old = split(day(6, ("US", "DE", "JP")))
    for m, frame in old.items():
        s3.put_object(Bucket="lake-flat", Key=f"lake/c/run_date=2026-11-23/marketplace={m}/{PART}",
                      Body=parquet_bytes(frame))
        glue.create_partition(DatabaseName="flat", TableName="c", PartitionInput={"Values": ["2026-11-23", m],
                              "StorageDescriptor": {**storage, "Location":
                                                    f"s3://lake-flat/lake/c/run_date=2026-11-23/marketplace={m}/"}})
    assert lake.read_day("c", "2026-11-23").height == 6
    lake.replace_day("c", "2026-11-23", split(day(4)))
    assert lake.read_day("c", "2026-11-23").height == 4
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake-flat", Prefix="lake/c/run_date=2026-11-23/")["Contents"]]
    assert len(keys) == 2 and all("/generation=" in k for k in keys)


def test_s3_glue_batches_of_100(moto_endpoint):
    kw = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    boto3.client("s3", **kw).create_bucket(Bucket="lake-many")
    glue = boto3.client("glue", **kw)
    glue.create_database(DatabaseInput={"Name": "many"})
    glue.create_table(DatabaseName="many", TableInput={"Name": "t", "PartitionKeys": [
        {"Name": "run_date", "Type": "string"}, {"Name": "marketplace", "Type": "string"}],
        "StorageDescriptor": {"Columns": [], "Location": "s3://lake-many/t/"}})
    markets = tuple(f"M{i:03d}" for i in range(130))
    S3Lake(bucket="lake-many", prefix="", endpoint_url=moto_endpoint, glue_database="many").replace_day(
        "t", "2026-11-23", split(day(260, markets)))
    paginator = glue.get_paginator("get_partitions")

    def partitions() -> list[dict]:
        return [p for page in paginator.paginate(DatabaseName="many", TableName="t") for p in page["Partitions"]]

    assert len(partitions()) == 130
    lake = S3Lake(bucket="lake-many", prefix="", endpoint_url=moto_endpoint, glue_database="many")
    lake.replace_day("t", "2026-11-23", split(day(390, markets)))  # 130 switched: update calls of 100 and 30
    assert lake.read_day("t", "2026-11-23").height == 390
    lake.replace_day("t", "2026-11-23", split(day(3, markets[:3])))  # 127 dropped: delete calls of 25
    assert sorted(p["Values"][1] for p in partitions()) == list(markets[:3])
    assert lake.read_day("t", "2026-11-23").height == 3


def test_s3_first_export_registers_its_glue_table_from_the_frame(moto_endpoint):
    kw = {"region_name": "us-east-1", "endpoint_url": moto_endpoint}
    boto3.client("s3", **kw).create_bucket(Bucket="lake-new")
    glue = boto3.client("glue", **kw)
    glue.create_database(DatabaseInput={"Name": "fresh"})
    frames = split(day(6, ("US", "DE")))
    S3Lake(bucket="lake-new", endpoint_url=moto_endpoint, glue_database="fresh").replace_day("cands", "2026-11-23", frames)
    table = glue.get_table(DatabaseName="fresh", Name="cands")["Table"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    expected = {c for c in next(iter(frames.values())).columns if c not in ("run_date", "marketplace")}
    assert set(columns) == expected and "marketplace" not in columns
    assert table["StorageDescriptor"]["Location"] == "s3://lake-new/lake/cands/"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["run_date", "marketplace"]
    assert len(glue.get_partitions(DatabaseName="fresh", TableName="cands")["Partitions"]) == 2


def test_s3_errors_name_the_bucket_and_table(moto_endpoint):
    with pytest.raises(LakeError, match="bucket 'missing-bucket'"):
        S3Lake(bucket="missing-bucket", endpoint_url=moto_endpoint).replace_day("c", "2026-11-23", split(day(2)))
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(Bucket="no-catalog")
    with pytest.raises(LakeError, match="Glue table nowhere.c"):
        S3Lake(bucket="no-catalog", endpoint_url=moto_endpoint, glue_database="nowhere").replace_day(
            "c", "2026-11-23", split(day(2)))
