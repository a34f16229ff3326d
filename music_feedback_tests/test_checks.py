"""The checks between stages fail on what an upstream bug would break, and say what they observed."""
from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from dagster import AssetKey

from music_feedback.defs.batch.checks import UNIFY_STATS, WINDOW_STATS, unify_stats, window_stats
from music_feedback.quality.checks import run_stats_suite, run_suite, zero
from music_feedback.quality.expectations import Between

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 23)
KEY = AssetKey(["p", "raw_streams"])


def plays(**overrides) -> pl.DataFrame:
    row = {"listener_id": 1, "track_id": 10, "play_count": 2, "completion_rate": 0.97, "engagement_score": 0.8,
           "played_at": datetime(2026, 11, 23, 12), "track_release_date": date(2026, 11, 20), "genre": "pop",
           "artist_id": 5}
    return pl.DataFrame([{**row, **overrides}])


def test_window_stats_catch_a_query_bound_to_the_wrong_day():
    good = window_stats(plays(), plays().clear(), 1, DAY)
    assert set(good) == set(WINDOW_STATS) and not any(good.values())
    wrong_day = plays(played_at=datetime(2026, 11, 22, 12), track_release_date=date(2026, 11, 10))
    stats = window_stats(wrong_day, wrong_day.clear(), 2, DAY)
    assert stats["played_outside_day"] == 1 and stats["released_outside_window"] == 1
    assert stats["rows_unaccounted"] == 1  # two extracted, one kept, none set aside


def test_unify_stats_catch_a_join_that_doubles_rows():
    raw = pl.concat([plays(), plays(track_id=11)])
    doubled = pl.concat([raw, raw.head(1)])
    stats = unify_stats(raw, doubled.with_columns(pl.lit("pop").alias("genre"),
                                                  pl.col("played_at").alias("first_played_at")))
    assert set(stats) == set(UNIFY_STATS)
    assert stats["rows_minus_raw_pairs"] == 1 and stats["duplicate_pairs"] == 1 and stats["plays_lost"] == -2


def test_failure_says_what_was_observed():
    result = run_suite(KEY, "rejected_share_within_limit", pl.DataFrame({"rejected_share": [0.049]}),
                       [Between("rejected_share", 0.0, 0.01)], "4.9% of 1,000 extracted rows set aside")
    assert not result.passed
    assert "4.9%" in result.description and "0.049" in result.description
    stats = run_stats_suite(KEY, "extract_fields_valid", {"played_outside_day": 3, "rows_unaccounted": 0},
                            zero("played_outside_day", "rows_unaccounted"))
    assert not stats.passed and "played_outside_day 3" in stats.description
    assert stats.metadata["played_outside_day"].value == 3
