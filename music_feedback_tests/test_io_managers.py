"""The IO manager's contract, run against the local folder and S3 (moto's server): frames and models per
partition and unpartitioned, lazy inputs, overwrites, missing inputs, and a small partitioned job run
through Dagster with each."""
import uuid

import boto3
import polars as pl
import pytest
from dagster import (AssetIn, DagsterType, DailyPartitionsDefinition, Definitions, asset, build_input_context,
                     build_output_context, materialize)

from music_feedback.io.parquet_io_manager import LocalParquetIOManager
from music_feedback.io.s3_io_manager import S3IOError, S3ParquetIOManager

DAYS = DailyPartitionsDefinition(start_date="2026-11-20")


@pytest.fixture(params=["local", "s3"])
def io_manager(request, tmp_path, moto_endpoint):
    if request.param == "local":
        return LocalParquetIOManager(base_dir=str(tmp_path))
    bucket = f"io-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return S3ParquetIOManager(bucket=bucket, endpoint_url=moto_endpoint)


def out(key, partition=None):
    return build_output_context(asset_key=key, partition_key=partition,
                                asset_partitions_def=DAYS if partition else None)


def into(key, partition=None, lazy=False):
    kind = DagsterType(lambda _, v: True, name="Frame", typing_type=pl.LazyFrame if lazy else pl.DataFrame)
    return build_input_context(asset_key=key, partition_key=partition, dagster_type=kind,
                               asset_partitions_def=DAYS if partition else None)


FRAME = pl.DataFrame({"listener_id": [3, 1, 2], "score": [0.9, 0.5, 0.7]})


def test_frames_round_trip_per_partition_and_lazily(io_manager):
    io_manager.handle_output(out(["p", "scored"], "2026-11-21"), FRAME)
    io_manager.handle_output(out(["p", "scored"], "2026-11-22"), FRAME.head(1))
    assert io_manager.load_input(into(["p", "scored"], "2026-11-21")).equals(FRAME)
    lazy = io_manager.load_input(into(["p", "scored"], "2026-11-22", lazy=True))
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(FRAME.head(1))
    assert io_manager.partitions(["p", "scored"]) == ["2026-11-21", "2026-11-22"]
    assert io_manager.read_frame(["p", "scored"], "2026-11-21", ["score"]).columns == ["score"]


def test_objects_round_trip_and_a_new_kind_replaces_the_old(io_manager):
    io_manager.handle_output(out(["p", "model"]), {"weights": [1, 2, 3]})
    assert io_manager.load_input(into(["p", "model"])) == {"weights": [1, 2, 3]}
    io_manager.handle_output(out(["p", "model"]), FRAME)  # now a frame: the old object must not shadow it
    assert io_manager.load_input(into(["p", "model"])).equals(FRAME)
    io_manager.handle_output(out(["p", "model"]), FRAME.head(2))
    assert io_manager.load_input(into(["p", "model"])).height == 2


def test_a_missing_input_names_where_it_looked(io_manager):
    with pytest.raises(FileNotFoundError, match=r"asset p/none partition 2026-11-21 has not been materialized yet "
                                                r"\(no object at .*p/none/2026-11-21.parquet"):
        io_manager.load_input(into(["p", "none"], "2026-11-21"))


def test_a_missing_bucket_is_named(moto_endpoint):
    io = S3ParquetIOManager(bucket="no-such-bucket-io", endpoint_url=moto_endpoint)
    with pytest.raises(S3IOError, match="s3://no-such-bucket-io/assets/p/x.parquet: NoSuchBucket .*MUSIC_FEEDBACK_S3_BUCKET"):
        io.handle_output(out(["p", "x"]), FRAME)


@asset(partitions_def=DAYS, key_prefix="p")
def plays(context) -> pl.DataFrame:
    return pl.DataFrame({"day": [context.partition_key] * 3, "n": [1, 2, 3]})


@asset(partitions_def=DAYS, key_prefix="p", ins={"plays": AssetIn(key=["p", "plays"])})
def totals(plays: pl.LazyFrame) -> pl.DataFrame:
    return plays.group_by("day").agg(pl.col("n").sum()).collect()


def test_a_partitioned_job_runs_through_dagster(io_manager):
    result = materialize([plays, totals], partition_key="2026-11-22", resources={"io_manager": io_manager})
    assert result.success
    assert io_manager.read_frame(["p", "totals"], "2026-11-22").to_dicts() == [{"day": "2026-11-22", "n": 6}]
    Definitions.validate_loadable(Definitions(assets=[plays, totals], resources={"io_manager": io_manager}))
