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

pytestmark = pytest.mark.integration

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


def test_a_lazy_input_scans_the_stored_object_itself(io_manager):
    """On S3 too the scan reads the object where it lies (projection and filters pushed down), not a copy."""
    io_manager.handle_output(out(["p", "scored"], "2026-11-21"), FRAME)
    lazy = io_manager.load_input(into(["p", "scored"], "2026-11-21", lazy=True))
    plan = lazy.filter(pl.col("score") > 0.6).select("listener_id").explain()
    assert "SCAN" in plan.upper() and io_manager.where("p/scored/2026-11-21.parquet") in plan
    assert lazy.filter(pl.col("score") > 0.6).select("listener_id").collect()["listener_id"].to_list() == [3, 2]


def test_per_partition_objects_and_unpartitioned_frames(io_manager):
    io_manager.handle_output(out(["p", "decision"], "2026-11-21"), {"promoted": True})
    io_manager.handle_output(out(["p", "decision"], "2026-11-22"), {"promoted": False})
    assert io_manager.load_input(into(["p", "decision"], "2026-11-21")) == {"promoted": True}
    assert io_manager.load_input(into(["p", "decision"], "2026-11-22")) == {"promoted": False}
    assert io_manager.partitions(["p", "decision"]) == []  # objects are not frames
    io_manager.handle_output(out(["p", "table"]), FRAME)
    assert io_manager.load_input(into(["p", "table"], lazy=True)).collect().equals(FRAME)
    with pytest.raises(FileNotFoundError, match=r"asset p/table partition 2026-11-21 has no frame at .*"
                                                r"p/table/2026-11-21.parquet: materialize it first"):
        io_manager.read_frame(["p", "table"], "2026-11-21")


def test_the_retrain_reads_logged_features_wherever_they_are(io_manager):
    from datetime import date

    from music_feedback.scoring.outcomes import logged_features
    for day, n in (("2026-11-20", 2), ("2026-11-21", 3), ("2026-11-22", 2), ("2026-11-23", 4)):
        frame = pl.DataFrame({"listener_id": list(range(n)), "track_id": [7] * n, "plays": [float(i) for i in range(n)],
                              "genre": ["pop"] * n})
        if day == "2026-11-20":  # scored before the features were a struct: JSON text, and another feature set
            frame = frame.select("listener_id", "track_id", pl.struct("plays").struct.json_encode().alias("features"))
        else:
            frame = frame.select("listener_id", "track_id", pl.struct("plays", "genre").alias("features"))
        io_manager.handle_output(out(["p", "scored_candidates"], day), frame)
    logged = logged_features(io_manager, ["p", "scored_candidates"], date(2026, 11, 23))  # before its own day
    assert logged.height == 7 and logged["plays"].to_list() == [0, 1, 0, 1, 2, 0, 1]
    assert logged["genre"].to_list() == [None, None, "pop", "pop", "pop", "pop", "pop"]
    assert sorted(set(logged["batch_date"].cast(str))) == ["2026-11-20", "2026-11-21", "2026-11-22"]


def test_why_reads_the_batch_wherever_it_is(io_manager, program):
    from datetime import date

    from music_feedback.explain import explain
    day, slug = date(2026, 11, 23), program.slug
    lines = explain(io_manager, None, program, 1, 2, day)
    assert "has not run" in lines[0] and io_manager.where(f"{slug}/unified_candidates/2026-11-23.parquet") in lines[0]
    io_manager.handle_output(out([slug, "unified_candidates"], "2026-11-23"),
                             pl.DataFrame({"listener_id": [1], "track_id": [3]}))
    assert "not a candidate" in explain(io_manager, None, program, 1, 2, day)[0]


@pytest.mark.unit
def test_from_env_names_the_missing_bucket(monkeypatch):
    monkeypatch.setenv("MUSIC_FEEDBACK_S3_BUCKET", "feedback-assets")
    monkeypatch.setenv("MUSIC_FEEDBACK_S3_IO_PREFIX", "io")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    m = S3ParquetIOManager.from_env()
    assert (m.bucket, m.prefix, m.region_name) == ("feedback-assets", "io", "eu-west-1")
    assert m.where("p/x.parquet") == "s3://feedback-assets/io/p/x.parquet"
    monkeypatch.delenv("MUSIC_FEEDBACK_S3_BUCKET")
    with pytest.raises(ValueError, match="MUSIC_FEEDBACK_S3_BUCKET"):
        S3ParquetIOManager.from_env()
