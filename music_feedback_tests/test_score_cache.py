"""One contract for every score cache adapter: embedded Parquet files, and DynamoDB on moto's server mode and
on DynamoDB Local; and the feature fingerprint that is part of the key."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from music_feedback.scoring.cache.dynamodb_cache import DynamoDBScoreCache
from music_feedback.scoring.cache.fingerprint import feature_fingerprint
from music_feedback.scoring.cache.parquet_cache import ParquetScoreCache
from music_feedback.scoring.cache.port import KEY, versions_key

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
V1 = versions_key("feedback-propensity-v3@aaaa", "music-affinity-v2@bbbb")
V2 = versions_key("feedback-propensity-v3@cccc", "music-affinity-v2@bbbb")


def dynamodb(endpoint: str) -> DynamoDBScoreCache:
    c = DynamoDBScoreCache(table_name=f"score-cache-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint)
    c.ensure_table()
    return c


@pytest.fixture(params=["parquet", pytest.param("dynamodb-moto", marks=pytest.mark.integration),
                        pytest.param("dynamodb-local", marks=pytest.mark.integration)])
def cache(request, tmp_path):
    if request.param == "parquet":
        return ParquetScoreCache(path=str(tmp_path / "cache"))
    return dynamodb(request.getfixturevalue("moto_url" if request.param == "dynamodb-moto"
                                            else "dynamodb_local_endpoint"))


def scores(n: int, offset: int = 0, seed: int = 0, fingerprint: int = 7) -> pl.DataFrame:
    """listener_id, track_id, feature_fingerprint (from `fingerprint` and the listener, over all 64 bits),
    and scores."""
    rng = np.random.default_rng(seed)
    ids = np.arange(offset, offset + n, dtype=np.int64)
    return pl.DataFrame({"listener_id": ids, "track_id": (ids % 7) + 100,
                         "feature_fingerprint": np.full(n, fingerprint * 0x9E3779B97F4A7C15 % 2**64,
                                                        np.uint64) + ids.astype(np.uint64),
                         "propensity_score": rng.random(n), "affinity_score": rng.random(n)})


def sort(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("listener_id", "track_id")


def test_a_stored_pair_is_found_with_its_exact_scores(cache):
    s = scores(260)  # more than one BatchGetItem (100) and many BatchWriteItem (25) chunks
    assert cache.store("music-feedback", V1, s, NOW) == 260
    hits = cache.lookup("music-feedback", V1, s.select(KEY), NOW + timedelta(hours=1))
    assert sort(hits).equals(sort(s))  # bit for bit


@pytest.mark.parametrize("offset", [0, 2**31, -5], ids=["packable", "large-ids", "negative-ids"])
def test_any_ids_hit_once_even_when_asked_twice(cache, offset):
    """Ids of any size and sign, each pair asked twice."""
    s = scores(40, offset=offset)
    cache.store("music-feedback", V1, s, NOW)
    wanted = pl.concat([s, s]).select(KEY)
    assert sort(cache.lookup("music-feedback", V1, wanted, NOW)).equals(sort(s))


def test_only_stored_pairs_hit(cache):
    cache.store("music-feedback", V1, scores(50), NOW)
    wanted = scores(100).select(KEY)
    assert cache.lookup("music-feedback", V1, wanted, NOW).height == 50


def test_other_model_versions_miss(cache):
    s = scores(30)
    cache.store("music-feedback", V1, s, NOW)
    assert cache.lookup("music-feedback", V2, s, NOW).height == 0


def test_other_feature_values_miss(cache):
    """The same pair and models with the features of another day: its score is not this day's."""
    cache.store("music-feedback", V1, scores(30, fingerprint=1), NOW)
    assert cache.lookup("music-feedback", V1, scores(30, fingerprint=2), NOW).height == 0


def test_a_pair_keeps_a_score_per_feature_values(cache):
    """Day 2 storing its scores does not replace day 1's: a re-run of day 1 finds day 1's own."""
    day1, day2 = scores(30, seed=1, fingerprint=1), scores(30, seed=2, fingerprint=2)
    cache.store("music-feedback", V1, day1, NOW)
    cache.store("music-feedback", V1, day2, NOW + timedelta(days=1))
    for day in (day1, day2):
        assert sort(cache.lookup("music-feedback", V1, day.select(KEY), NOW + timedelta(days=1))).equals(sort(day))


def test_other_program_misses(cache):
    s = scores(30)
    cache.store("music-feedback", V1, s, NOW)
    assert cache.lookup("podcast-feedback", V1, s, NOW).height == 0


def test_entries_expire_after_the_ttl(cache):
    s = scores(20)
    cache.store("music-feedback", V1, s, NOW)
    assert cache.lookup("music-feedback", V1, s, NOW + timedelta(days=13, hours=23)).height == 20
    assert cache.lookup("music-feedback", V1, s, NOW + timedelta(days=14)).height == 0


def test_storing_again_replaces_and_extends(cache):
    cache.store("music-feedback", V1, scores(10, seed=1), NOW)
    newer = scores(10, seed=2)
    cache.store("music-feedback", V1, newer, NOW + timedelta(days=10))
    hits = cache.lookup("music-feedback", V1, newer, NOW + timedelta(days=20))
    assert sort(hits).equals(sort(newer))


def test_a_pair_stored_twice_reads_back_its_latest_scores(cache):
    cache.store("music-feedback", V1, scores(10, seed=1), NOW)
    newer = scores(10, seed=2)
    cache.store("music-feedback", V1, newer, NOW + timedelta(hours=1))
    assert sort(cache.lookup("music-feedback", V1, newer, NOW + timedelta(hours=2))).equals(sort(newer))


def test_empty_inputs(cache):
    assert cache.store("music-feedback", V1, scores(0), NOW) == 0
    assert cache.lookup("music-feedback", V1, scores(0), NOW).height == 0


def test_parquet_purge_deletes_expired_files(tmp_path):
    c = ParquetScoreCache(path=str(tmp_path / "c"))
    c.store("music-feedback", V1, scores(5), NOW)
    c.store("podcast-feedback", V1, scores(3), NOW + timedelta(days=5))
    assert c.purge_expired(NOW + timedelta(days=1)) == 0
    assert c.purge_expired(NOW + timedelta(days=15)) == 5
    assert len(list((tmp_path / "c" / "music-feedback").iterdir())) == 0
    assert c.lookup("podcast-feedback", V1, scores(3), NOW + timedelta(days=15)).height == 3


def test_parquet_store_sweeps_the_programs_expired_files_and_crash_leftovers(tmp_path):
    c = ParquetScoreCache(path=str(tmp_path / "c"))
    c.store("music-feedback", V1, scores(5), NOW)
    folder = tmp_path / "c" / "music-feedback"
    leftover = folder / f".{c.expires_at(NOW)}-{'0' * 32}.parquet.tmp"  # a write cut short by a crash
    leftover.write_bytes(b"PAR1 half a file")
    assert c.lookup("music-feedback", V1, scores(5), NOW).height == 5  # the half-written file is not read
    c.store("music-feedback", V1, scores(2, offset=100), NOW + timedelta(days=15))
    (left,) = folder.iterdir()  # only the new file
    assert left.name.startswith(f"{c.expires_at(NOW + timedelta(days=15))}-")


def test_parquet_files_without_fingerprints_are_not_read_and_go_when_expired(tmp_path):
    """A cache written before fingerprints were in the key: a run ignores it, the sweep removes it."""
    c = ParquetScoreCache(path=str(tmp_path / "c"))
    folder = tmp_path / "c" / "music-feedback"
    folder.mkdir(parents=True)
    old = folder / f"{c.expires_at(NOW)}-{uuid.uuid4().hex}.parquet"
    scores(5).drop("feature_fingerprint").with_columns(pl.lit(V1).alias("versions")).write_parquet(old)
    assert c.lookup("music-feedback", V1, scores(5), NOW).height == 0
    c.store("music-feedback", V1, scores(5), NOW)
    assert sort(c.lookup("music-feedback", V1, scores(5).select(KEY), NOW)).equals(sort(scores(5)))
    assert old.exists()
    assert c.purge_expired(NOW + timedelta(days=15)) == 10
    assert not any(folder.iterdir())


@pytest.mark.parametrize("server", ["moto_url", "dynamodb_local_endpoint"], ids=["moto", "local"])
@pytest.mark.integration
def test_dynamodb_items_without_fingerprints_are_not_read(request, server):
    c = dynamodb(request.getfixturevalue(server))
    c.client().put_item(TableName=c.table_name, Item={  # the first layout: sk = the versions alone
        "pk": {"S": "PAIR#music-feedback#1#101"}, "sk": {"S": V1}, "listener_id": {"N": "1"},
        "track_id": {"N": "101"}, "propensity_score": {"N": "0.5"}, "affinity_score": {"N": "0.5"},
        "expires_at": {"N": str(c.expires_at(NOW))}})
    assert c.lookup("music-feedback", V1, scores(1, offset=1), NOW).height == 0


def test_the_fingerprint_is_the_feature_values():
    frame = pl.DataFrame({"genre": ["rock", "rock", None, "pop"], "engagement_score": [0.5, 0.5, 0.5, None],
                          "feedback_history": [3.0, 3.0, 3.0, 0.0]})
    fp = feature_fingerprint(frame, ["genre", "engagement_score", "feedback_history"])
    assert fp.dtype == pl.UInt64 and fp[0] == fp[1] and fp.n_unique() == 3
    # our own hash, so a polars upgrade or another machine does not turn every entry into a miss
    assert fp.to_list()[0] == 460668079015488063
    # the column order does not matter; a categorical is its text
    same = frame.select("feedback_history", pl.col("genre").cast(pl.Categorical), "engagement_score")
    assert feature_fingerprint(same, ["feedback_history", "genre", "engagement_score"]).equals(fp)
    # any value, a null for a zero, or another column set changes it
    for changed in (frame.with_columns(pl.col("feedback_history") + 1e-12),
                    frame.with_columns(pl.col("genre").fill_null("")),
                    frame.with_columns(pl.col("engagement_score").fill_null(0.0))):
        assert (feature_fingerprint(changed, list(frame.columns)) != fp).sum() >= 1
    assert not feature_fingerprint(frame, ["genre", "engagement_score"]).equals(fp)


def test_parquet_program_id_must_be_a_folder_name(tmp_path):
    with pytest.raises(ValueError, match="cannot name a score cache folder"):
        ParquetScoreCache(path=str(tmp_path / "c")).store("../x", V1, scores(1), NOW)
