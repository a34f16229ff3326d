"""The checks between stages fail on what an upstream bug would break, and say what they observed."""
from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl
import pytest
from dagster import AssetKey

from music_feedback.defs.batch.checks import UNIFY_STATS, WINDOW_STATS, unify_stats_sql, window_stats_sql
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


def sql_stats(sql_of, **frames) -> dict:
    """The SQL statistics over in-memory frames, as the warehouse computes them over the stored stages."""
    con = duckdb.connect()
    for name, frame in frames.items():
        con.register(name, frame)
    return {k: int(v or 0) for k, v in con.sql(sql_of(**frames and {n: n for n in frames})).pl()
            .row(0, named=True).items()}


def test_window_stats_catch_a_query_bound_to_the_wrong_day():
    good = sql_stats(lambda raw: window_stats_sql(raw, DAY), raw=plays())
    assert good["valid_rows"] == 1 and not any(v for k, v in good.items() if k != "valid_rows")
    wrong_day = plays(played_at=datetime(2026, 11, 22, 12), track_release_date=date(2026, 11, 10),
                      completion_rate=0.5, genre=None)
    stats = sql_stats(lambda raw: window_stats_sql(raw, DAY), raw=wrong_day)
    assert set(stats) == {"valid_rows", *WINDOW_STATS} - {"rows_unaccounted"}
    assert stats["played_outside_day"] == 1 and stats["released_outside_window"] == 1
    assert stats["completion_below_95"] == 1 and stats["null_required_fields"] == 1


def test_unify_stats_catch_a_join_that_doubles_rows():
    raw = pl.concat([plays(), plays(track_id=11)])
    doubled = pl.concat([raw, raw.head(1)]).with_columns(pl.col("played_at").alias("first_played_at"))
    stats = sql_stats(unify_stats_sql, raw=raw, unified=doubled)
    assert set(stats) == set(UNIFY_STATS)
    assert stats["rows_minus_raw_pairs"] == 1 and stats["duplicate_pairs"] == 1 and stats["plays_lost"] == -2
    right = sql_stats(unify_stats_sql, raw=raw, unified=raw.with_columns(pl.col("played_at").alias("first_played_at")))
    assert not any(right.values())


def test_failure_says_what_was_observed():
    result = run_suite(KEY, "rejected_share_within_limit", pl.DataFrame({"rejected_share": [0.049]}),
                       [Between("rejected_share", 0.0, 0.01)], "4.9% of 1,000 extracted rows set aside")
    assert not result.passed
    assert "4.9%" in result.description and "0.049" in result.description
    stats = run_stats_suite(KEY, "extract_fields_valid", {"played_outside_day": 3, "rows_unaccounted": 0},
                            zero("played_outside_day", "rows_unaccounted"))
    assert not stats.passed and "played_outside_day 3" in stats.description
    assert stats.metadata["played_outside_day"].value == 3


def test_violation_counts_stream_what_gx_would_fail_on_the_frame():
    """The features' checks count each expectation's violations over the stored scan; a frame GX fails on
    an expectation has a non-zero count for it, and a clean one none."""
    from music_feedback.defs.batch.checks import LISTENER_CHECKS
    from music_feedback.quality.frame_stats import violation_counts
    bad = pl.DataFrame({"listener_id": [1, 2, 2, None], "feedback_history": [1.0, None, float("nan"), 2.0],
                        "engagement_score": [0.5, 1.5, None, 0.1], "listening_frequency": [1.0, -1.0, 2.0, 3.0]})
    counts = violation_counts(bad.lazy(), LISTENER_CHECKS)
    assert counts == {"listener_id_duplicates": 1, "listener_id_null": 1, "feedback_history_null": 2,
                      "engagement_score_out_of_range": 1, "listening_frequency_out_of_range": 1,
                      "feedback_history_out_of_range": 0}
    gx = run_suite(KEY, "listener_features_valid", bad, LISTENER_CHECKS)
    assert not gx.passed
    clean = bad.filter(pl.int_range(pl.len()) == 0)
    assert not any(violation_counts(clean.lazy(), LISTENER_CHECKS).values())
    assert run_suite(KEY, "listener_features_valid", clean, LISTENER_CHECKS).passed
