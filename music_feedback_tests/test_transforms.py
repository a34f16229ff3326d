"""Tests for the extract-stage transforms: validation split and the unified candidate model."""
from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from music_feedback.transforms.unify import EVENT_TYPE, unify
from music_feedback.transforms.validate import REQUIRED, split_invalid

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 23)
PLAY_SCHEMA = {
    "listener_id": pl.Int64, "track_id": pl.Int64, "play_count": pl.Int64, "completion_rate": pl.Float64,
    "engagement_score": pl.Float64, "played_at": pl.Datetime("us"), "track_release_date": pl.Date,
    "genre": pl.String, "artist_id": pl.Int64,
}
GOOD = {"listener_id": 1, "track_id": 10, "play_count": 1, "completion_rate": 0.97, "engagement_score": 0.8,
        "played_at": datetime(2026, 11, 23, 12), "track_release_date": date(2026, 11, 20), "genre": "pop",
        "artist_id": 5}


def plays(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([{**GOOD, **row} for row in rows], schema=PLAY_SCHEMA)


# ---------------------------------------------------------------- split_invalid

@pytest.mark.parametrize("column", REQUIRED)
def test_null_in_required_column(column):
    valid, rejected = split_invalid(plays({}, {column: None}))
    assert valid.height == 1
    assert rejected["reason"].to_list() == [f"null_{column}"]


@pytest.mark.parametrize("change, reason", [
    ({"completion_rate": 1.2}, "completion_rate_out_of_range"),
    ({"completion_rate": -0.01}, "completion_rate_out_of_range"),
    ({"completion_rate": float("nan")}, "completion_rate_out_of_range"),
    ({"engagement_score": 1.0001}, "engagement_score_out_of_range"),
    ({"engagement_score": -0.5}, "engagement_score_out_of_range"),
    ({"play_count": 0}, "play_count_out_of_range"),
    ({"play_count": -3}, "play_count_out_of_range"),
    ({"track_release_date": date(2026, 11, 24)}, "released_after_play"),
])
def test_out_of_range(change, reason):
    valid, rejected = split_invalid(plays(change))
    assert valid.height == 0
    assert rejected["reason"].to_list() == [reason]


def test_range_bounds_are_valid():
    frame = plays({"completion_rate": 0.0, "engagement_score": 0.0, "play_count": 1},
                  {"completion_rate": 1.0, "engagement_score": 1.0, "play_count": 1000})
    valid, rejected = split_invalid(frame)
    assert rejected.height == 0
    assert valid.equals(frame)


def test_null_reason_comes_before_range_reason():
    valid, rejected = split_invalid(plays({"listener_id": None, "completion_rate": 3.0}))
    assert rejected["reason"].to_list() == ["null_listener_id"]


def test_split_loses_nothing_and_leaves_valid_rows_unchanged():
    frame = plays(
        {"listener_id": 1}, {"listener_id": 2, "engagement_score": None}, {"listener_id": 3},
        {"listener_id": 4, "completion_rate": 1.5}, {"listener_id": 5, "play_count": 0},
        {"listener_id": 6, "genre": None},  # genre is required: unify and scoring need it
    )
    valid, rejected = split_invalid(frame)
    assert valid.height + rejected.height == frame.height
    assert valid.columns == frame.columns
    assert rejected.columns == frame.columns + ["reason"]
    assert valid.equals(frame.filter(pl.col("listener_id").is_in([1, 3])))
    assert rejected.drop("reason").equals(frame.filter(pl.col("listener_id").is_in([2, 4, 5, 6])))
    assert rejected["reason"].to_list() == ["null_engagement_score", "completion_rate_out_of_range",
                                            "play_count_out_of_range", "null_genre"]


def test_split_of_empty_frame():
    valid, rejected = split_invalid(plays().clear())
    assert valid.height == 0 and rejected.height == 0
    assert rejected.columns[-1] == "reason"


# ---------------------------------------------------------------- unify

LISTENERS = pl.DataFrame({"listener_id": [1, 2], "marketplace": ["US", "JP"],
                          "time_zone": ["America/Chicago", "Asia/Tokyo"], "voice_enabled": [True, False],
                          "opted_out": [False, False]})
TRACKS = pl.DataFrame({"track_id": [10, 11], "track_name": ["Track 10", "Track 11"],
                       "genre": ["pop", "rock"]})


def unified(frame: pl.DataFrame, program_id="music-feedback", batch_date=DAY,
            connector="redshift-music-streams"):
    return unify(frame, LISTENERS, TRACKS, program_id, batch_date, connector)


SAMPLE = plays(
    {"listener_id": 1, "track_id": 10, "play_count": 2, "completion_rate": 0.96, "engagement_score": 0.7,
     "played_at": datetime(2026, 11, 23, 9)},
    {"listener_id": 1, "track_id": 10, "play_count": 3, "completion_rate": 0.99, "engagement_score": 0.7,
     "played_at": datetime(2026, 11, 23, 21)},
    {"listener_id": 1, "track_id": 10, "play_count": 1, "completion_rate": 0.95, "engagement_score": 0.7,
     "played_at": datetime(2026, 11, 23, 14)},
    {"listener_id": 2, "track_id": 11, "play_count": 1, "completion_rate": 1.0, "genre": "rock",
     "played_at": datetime(2026, 11, 23, 3)},
    {"listener_id": 1, "track_id": 11, "play_count": 4, "genre": "rock"},
    {"listener_id": 7, "track_id": 10},  # a listener the warehouse does not know
    {"listener_id": 2, "track_id": 99, "genre": "jazz"},  # a track the warehouse does not know
)


def test_unify_dedupes_by_listener_and_track():
    out = unified(SAMPLE)
    assert out.select("listener_id", "track_id").rows() == [(1, 10), (1, 11), (2, 11), (2, 99), (7, 10)]
    row = out.filter((pl.col("listener_id") == 1) & (pl.col("track_id") == 10)).row(0, named=True)
    assert row["play_count"] == 6
    assert row["session_count"] == 3
    assert row["completion_rate"] == 0.99
    assert row["first_played_at"] == datetime(2026, 11, 23, 9)
    assert row["last_played_at"] == datetime(2026, 11, 23, 21)
    single = out.filter((pl.col("listener_id") == 1) & (pl.col("track_id") == 11)).row(0, named=True)
    assert (single["play_count"], single["session_count"]) == (4, 1)
    assert single["first_played_at"] == single["last_played_at"] == GOOD["played_at"]
    assert out["play_count"].sum() == SAMPLE["play_count"].sum()


def test_unify_packed_and_two_key_paths_agree(monkeypatch):
    """Ids that fit one int64 key group on it; others (here a listener id past 2**31) group on both
    columns: the same rows either way."""
    import music_feedback.transforms.unify as u
    big = SAMPLE.with_columns(pl.when(pl.col("listener_id") == 7).then(2**40).otherwise(pl.col("listener_id"))
                              .alias("listener_id"))
    assert u.packable(SAMPLE.lazy()) and not u.packable(big.lazy())
    packed = unified(SAMPLE)
    assert packed.height == 5
    monkeypatch.setattr(u, "packable", lambda plays: False)
    assert unified(SAMPLE).equals(packed)
    assert unified(big).height == 5


def test_unify_keeps_pairs_with_a_null_id_apart():
    """A null listener id would make a null packed key for every track; such plays group on both columns."""
    import music_feedback.transforms.unify as u
    nulls = pl.concat([SAMPLE, plays({"track_id": 10}, {"track_id": 11})]).with_columns(
        pl.when(pl.col("listener_id") == GOOD["listener_id"]).then(None).otherwise(pl.col("listener_id"))
        .alias("listener_id"))
    assert not u.packable(nulls.lazy())
    out = unified(nulls)
    assert out.filter(pl.col("listener_id").is_null())["track_id"].sort().to_list() == [10, 11]


def test_unify_joins_context():
    out = unified(SAMPLE)
    by_pair = {(r["listener_id"], r["track_id"]): r for r in out.iter_rows(named=True)}
    assert by_pair[(2, 11)]["marketplace"] == "JP"
    assert by_pair[(2, 11)]["time_zone"] == "Asia/Tokyo"
    assert by_pair[(2, 11)]["voice_enabled"] is False
    assert by_pair[(2, 11)]["track_name"] == "Track 11"
    assert by_pair[(2, 11)]["genre"] == "rock"
    assert by_pair[(1, 10)]["marketplace"] == "US" and by_pair[(1, 10)]["track_name"] == "Track 10"
    unknown_listener = by_pair[(7, 10)]
    assert unknown_listener["marketplace"] is None and unknown_listener["time_zone"] is None
    assert unknown_listener["track_name"] == "Track 10"
    assert by_pair[(2, 99)]["track_name"] is None and by_pair[(2, 99)]["marketplace"] == "JP"
    assert "opted_out" not in out.columns  # only the context columns the candidate model carries


def test_unify_text_context_is_categories_and_reads_as_text():
    out = unified(SAMPLE)
    for col in ("genre", "marketplace", "time_zone", "track_name"):
        assert out.schema[col] == pl.Categorical, col
    row = out.filter((pl.col("listener_id") == 2) & (pl.col("track_id") == 11)).row(0, named=True)
    assert (row["genre"], row["marketplace"], row["track_name"]) == ("rock", "JP", "Track 11")
    assert out.filter(pl.col("marketplace") == "JP").height == 2


def test_unify_event_metadata():
    out = unified(SAMPLE, program_id="music-feedback", batch_date=DAY, connector="redshift-music-streams")
    assert out["program_id"].unique().to_list() == ["music-feedback"]
    assert out["batch_date"].unique().to_list() == [DAY]
    assert out["event_type"].unique().to_list() == [EVENT_TYPE] == ["track_completed"]
    assert out["source_connector"].unique().to_list() == ["redshift-music-streams"]
    # one value a batch: a byte a row, compared as text
    assert out["program_id"].dtype == pl.Enum(["music-feedback"])
    assert out.filter(pl.col("program_id") == "music-feedback").height == out.height
    # with listener and track, the metadata identifies each event
    assert out.select("program_id", "batch_date", "event_type", "listener_id", "track_id").is_unique().all()


def test_unify_is_deterministic():
    first = unified(SAMPLE)
    again = unified(SAMPLE.clone())
    reordered = unified(SAMPLE.reverse())
    assert first.equals(again) and first.equals(reordered)


@pytest.mark.parametrize("kwargs", [{"program_id": "podcast-feedback"}, {"batch_date": date(2026, 11, 24)}])
def test_unify_event_identity_depends_on_program_and_day(kwargs):
    identity = ("program_id", "batch_date", "listener_id", "track_id")
    base = unified(SAMPLE).select(pl.col(identity).cast(pl.String))
    other = unified(SAMPLE, **kwargs).select(pl.col(identity).cast(pl.String))
    assert base.join(other, on=list(identity), how="semi").is_empty()
