"""Playlist scoring (Bayesian average with a genre prior, Wilson bound, decay, one vote per listener) and
the moves; the store's contract (moves, audit rows, re-runs) is test_playlist_store.py."""
from __future__ import annotations

import polars as pl
import pytest

from music_feedback.playlists.membership import changes
from music_feedback.playlists.scoring import track_scores, wilson, wilson_lower_bound
from music_feedback.programs.model import PlaylistSettings

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
DAY = 86_400


def answers(rows: list[tuple[int, int, int, float]], genre="rock", market="US") -> pl.DataFrame:
    """(listener, track, rating, age in days)."""
    return pl.DataFrame([{"listener_id": l, "track_id": t, "rating": r, "submitted_at": NOW - age * DAY,
                          "channel": "email", "batch_date": "2026-11-23", "marketplace": market, "genre": genre,
                          "track_name": f"T{t}"} for l, t, r, age in rows])


def test_bayesian_average_shrinks_small_counts_to_the_genre_prior():
    votes = [(i, 1, 1, 0) for i in range(2)] + [(100 + i, 2, 1 if i < 45 else -1, 0) for i in range(60)]
    scores = track_scores(answers(votes), NOW, PlaylistSettings(halfLifeDays=1e9))
    one, two = (scores.filter(pl.col("track_id") == t).row(0, named=True) for t in (1, 2))
    prior = one["prior"]
    assert prior == pytest.approx(47 / 62)  # one genre: its like rate is the overall one
    assert one["score"] == pytest.approx((2 + prior * 10) / (2 + 10))  # 2 of 2 is not a perfect track
    assert two["score"] == pytest.approx((45 + prior * 10) / (60 + 10))
    assert one["votes"] == 2 and two["votes"] == 60


def test_older_votes_count_less():
    votes = [(1, 1, -1, 28), (2, 1, -1, 28), (3, 1, 1, 0)]
    s = track_scores(answers(votes), NOW, PlaylistSettings(halfLifeDays=14)).row(0, named=True)
    assert s["down"] == pytest.approx(0.5) and s["up"] == pytest.approx(1.0)  # two halvings of 28 days: 2 x 0.25


def test_wilson_lower_bound():
    settings = PlaylistSettings(method="wilson", halfLifeDays=1e9)
    s = track_scores(answers([(i, 1, 1 if i < 8 else -1, 0) for i in range(10)]), NOW, settings).row(0, named=True)
    assert s["score"] == pytest.approx(wilson(8, 10)) and 0.49 < s["score"] < 0.5
    expr = pl.DataFrame({"u": [0.0, 5.0], "n": [0.0, 5.0]}).select(wilson_lower_bound(pl.col("u"), pl.col("n")))
    assert expr.to_series().to_list()[0] == 0.0 and expr.to_series()[1] == pytest.approx(wilson(5, 5))


def test_genres_get_their_own_prior():
    votes = answers([(i, 1, 1, 0) for i in range(30)], genre="pop") .vstack(
        answers([(i, 2, -1, 0) for i in range(30)], genre="jazz"))
    scores = track_scores(votes, NOW, PlaylistSettings(halfLifeDays=1e9))
    priors = dict(scores.select("genre", "prior").iter_rows())
    assert priors["pop"] == pytest.approx((30 + 0.5 * 10) / 40) and priors["jazz"] == pytest.approx(5 / 40)


def test_no_feedback_scores_nothing():
    assert track_scores(pl.DataFrame(schema={
        "listener_id": pl.Int64, "track_id": pl.Int64, "rating": pl.Int64, "submitted_at": pl.Float64,
        "channel": pl.Utf8, "batch_date": pl.Utf8, "marketplace": pl.Utf8, "genre": pl.Utf8, "track_name": pl.Utf8}),
        NOW, PlaylistSettings()).is_empty()


def test_a_day_is_scored_as_of_its_schedule_not_the_wall_clock():
    from datetime import date, datetime, timezone
    from music_feedback.playlists.scoring import scored_as_of
    assert scored_as_of(date(2026, 11, 23)) == datetime(2026, 11, 24, 18, tzinfo=timezone.utc).timestamp()
