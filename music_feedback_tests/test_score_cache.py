"""One contract for every score cache adapter: embedded Parquet files, and DynamoDB on moto's server mode."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from music_feedback.scoring.cache.dynamodb_cache import DynamoDBScoreCache
from music_feedback.scoring.cache.port import versions_key
from music_feedback.scoring.cache.parquet_cache import ParquetScoreCache

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
V1 = versions_key("feedback-propensity-v3@aaaa", "music-affinity-v2@bbbb")
V2 = versions_key("feedback-propensity-v3@cccc", "music-affinity-v2@bbbb")


@pytest.fixture(params=["parquet", "dynamodb"])
def cache(request, tmp_path):
    if request.param == "parquet":
        return ParquetScoreCache(path=str(tmp_path / "cache"))
    c = DynamoDBScoreCache(table_name=f"score-cache-{uuid.uuid4().hex[:8]}",
                           endpoint_url=request.getfixturevalue("moto_url"))
    c.ensure_table()
    return c


def scores(n: int, offset: int = 0, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"listener_id": np.arange(offset, offset + n, dtype=np.int64),
                         "track_id": (np.arange(offset, offset + n, dtype=np.int64) % 7) + 100,
                         "propensity_score": rng.random(n), "affinity_score": rng.random(n)})


def sort(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("listener_id", "track_id")


def test_a_stored_pair_is_found_with_its_exact_scores(cache):
    s = scores(260)  # more than one BatchGetItem (100) and many BatchWriteItem (25) chunks
    assert cache.store("music-feedback", V1, s, NOW) == 260
    hits = cache.lookup("music-feedback", V1, s.select("listener_id", "track_id"), NOW + timedelta(hours=1))
    assert sort(hits).equals(sort(s))  # bit for bit


@pytest.mark.parametrize("offset", [0, 2**31, -5], ids=["packable", "large-ids", "negative-ids"])
def test_any_ids_hit_once_even_when_asked_twice(cache, offset):
    """Ids of any size and sign, each pair asked twice."""
    s = scores(40, offset=offset)
    cache.store("music-feedback", V1, s, NOW)
    wanted = pl.concat([s, s]).select("listener_id", "track_id")
    assert sort(cache.lookup("music-feedback", V1, wanted, NOW)).equals(sort(s))


def test_only_stored_pairs_hit(cache):
    cache.store("music-feedback", V1, scores(50), NOW)
    wanted = scores(100).select("listener_id", "track_id")
    assert cache.lookup("music-feedback", V1, wanted, NOW).height == 50


def test_other_model_versions_miss(cache):
    s = scores(30)
    cache.store("music-feedback", V1, s, NOW)
    assert cache.lookup("music-feedback", V2, s, NOW).height == 0


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


def test_parquet_program_id_must_be_a_folder_name(tmp_path):
    with pytest.raises(ValueError, match="cannot name a score cache folder"):
        ParquetScoreCache(path=str(tmp_path / "c")).store("../x", V1, scores(1), NOW)
