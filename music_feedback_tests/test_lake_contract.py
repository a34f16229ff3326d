"""One contract for every lake adapter (a local folder; S3 with its Glue catalogue on moto's server; S3 with
a pointer object as the catalogue): a reader during a replace sees the old whole day or the new whole day,
a crash leftover is never read, and a day reads back exactly as written."""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import boto3
import polars as pl
import pytest

from music_feedback.lake.local import LocalLake
from music_feedback.lake.port import split
from music_feedback.lake.s3 import S3Lake

pytestmark = pytest.mark.integration

DAY = "2026-11-23"


def day(n: int, markets: tuple[str, ...], tag: int) -> pl.DataFrame:
    return pl.DataFrame({"listener_id": list(range(n)), "tag": [tag] * n,
                         "marketplace": [markets[i % len(markets)] for i in range(n)]})


def canon(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("listener_id", "tag", "marketplace").sort("listener_id")


@pytest.fixture(params=["local", "s3-glue", "s3-pointer"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(root=str(tmp_path / "lake"))
    endpoint = request.getfixturevalue("moto_endpoint")
    name = f"lake-{uuid.uuid4().hex[:10]}"
    kw = {"region_name": "us-east-1", "endpoint_url": endpoint}
    boto3.client("s3", **kw).create_bucket(Bucket=name)
    database = None
    if request.param == "s3-glue":
        database = name.replace("-", "_")
        boto3.client("glue", **kw).create_database(DatabaseInput={"Name": database})
    return S3Lake(bucket=name, endpoint_url=endpoint, glue_database=database)


def test_a_day_reads_back_exactly_as_written(lake):
    written = day(1000, ("US", "DE", "JP"), 1)
    lake.replace_day("candidates", DAY, split(written))
    got = lake.read_day("candidates", DAY)
    assert got.height == written.height
    assert canon(got).equals(canon(written))
    assert lake.read_day("candidates", "2026-11-24").height == 0  # never written
    lake.replace_day("candidates", DAY, {})  # an empty day replaces it whole
    assert lake.read_day("candidates", DAY).height == 0


def test_a_reader_during_replaces_sees_one_whole_day(lake):
    """Replaces alternate between two days of different marketplaces in a thread; every read in the meantime
    is exactly one of them."""
    old, new = day(3000, ("US", "DE", "JP", "FR"), 1), day(2000, ("US", "DE", "BR"), 2)
    lake.replace_day("candidates", DAY, split(old))
    whole = {1: canon(old), 2: canon(new)}
    done, reading, failure = threading.Event(), threading.Event(), []

    def writer():
        try:
            reading.wait(60)  # the replaces start once the reader reads, so its reads overlap them on a slow machine
            for i in range(8):
                lake.replace_day("candidates", DAY, split(new if i % 2 == 0 else old))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    while not done.is_set() or len(seen) < 2:
        reading.set()
        got = lake.read_day("candidates", DAY)
        tags = set(got["tag"]) if got.height else set()
        assert len(tags) == 1, f"a read mixed days {tags} ({got.height} rows)"
        tag = tags.pop()
        assert canon(got).equals(whole[tag]), f"read {got.height} rows of day {tag}, not the whole day"
        seen.append(tag)
    thread.join()
    assert not failure, failure
    assert canon(lake.read_day("candidates", DAY)).equals(whole[1])  # the last replace wrote the old day


def test_a_crash_leftover_is_never_read(lake, tmp_path):
    """A replace dies after writing part of the new day (its second marketplace cannot be serialised): the
    reader still gets the previous day, whole; the next replace reads back exactly its rows."""
    before = day(900, ("US", "DE", "JP"), 1)
    lake.replace_day("candidates", DAY, split(before))
    broken = split(day(600, ("US", "DE"), 2))
    broken["DE"] = broken["DE"].with_columns(pl.Series("tag", [object()] * broken["DE"].height, dtype=pl.Object))
    with pytest.raises(pl.exceptions.ComputeError):
        lake.replace_day("candidates", DAY, broken)
    # the leftover is really there (the new day's first marketplace) ...
    if isinstance(lake, LocalLake):
        root = Path(lake.root)
        assert list((root / "_staging" / "candidates").glob("*/marketplace=US/*.parquet"))
        # ... and outside the table: a glob of the table's folder finds exactly the day it holds
        globbed = pl.read_parquet(str(root / "candidates" / "**" / "*.parquet"))
        assert globbed.height == before.height
    else:
        keys = [o["Key"] for o in lake.client("s3").list_objects_v2(
            Bucket=lake.bucket, Prefix=f"lake/candidates/run_date={DAY}/")["Contents"]]
        assert len({k.split("/generation=")[1].split("/")[0] for k in keys}) == 2  # the current one and the leftover
    # ... but never read
    got = lake.read_day("candidates", DAY)
    assert got.height == before.height and canon(got).equals(canon(before))
    after = day(700, ("US", "DE"), 3)
    lake.replace_day("candidates", DAY, split(after))
    got = lake.read_day("candidates", DAY)
    assert got.height == after.height and canon(got).equals(canon(after))
