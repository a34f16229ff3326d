"""Playlist scoring (Bayesian average with a genre prior, Wilson bound, decay, one vote per listener) and
the moves with their audit rows, re-runnable."""
from __future__ import annotations

import polars as pl
import pytest

from music_feedback.playlists.membership import changes
from music_feedback.playlists.scoring import track_scores, wilson, wilson_lower_bound
from music_feedback.playlists.store import SQLitePlaylistStore
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


def test_moves_need_evidence_and_have_hysteresis(tmp_path):
    settings = PlaylistSettings(minVotes=5, enterScore=0.7, leaveScore=0.55, priorStrength=2, halfLifeDays=1e9)
    store = SQLitePlaylistStore(path=str(tmp_path / "playlists.sqlite"))
    loved = [(i, 1, 1, 0) for i in range(20)]
    few = [(i, 2, 1, 0) for i in range(3)]  # perfect but only 3 votes: stays out
    moves = changes(track_scores(answers(loved + few), NOW, settings), store.members("p"), settings)
    assert moves.select("track_id", "action").rows() == [(1, "enter")]
    store.apply("p", "2026-11-23", moves, NOW)
    assert store.members("p")["track_id"].to_list() == [1]
    # the day again (a re-run) gives the same playlists and one audit row, not two
    store.apply("p", "2026-11-23", moves, NOW)
    assert store.members("p")["track_id"].to_list() == [1] and store.audit("p").height == 1
    # score falls to 0.6: between leave and enter, so it stays; below 0.55 it leaves, with an audit row
    mixed = loved[:12] + [(100 + i, 1, -1, 0) for i in range(8)]
    assert changes(track_scores(answers(mixed), NOW, settings), store.members("p"), settings).is_empty()
    bad = loved[:5] + [(100 + i, 1, -1, 0) for i in range(15)]
    leave = changes(track_scores(answers(bad), NOW, settings), store.members("p"), settings)
    store.apply("p", "2026-11-24", leave, NOW + DAY)
    audit = store.audit("p")
    assert store.members("p").is_empty() and audit["action"].to_list() == ["enter", "leave"]
    assert {"prior", "up", "down", "votes", "score"} <= set(audit.columns)
    assert audit.row(1, named=True)["votes"] == 20


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


def _move(track: int, action: str, score: float = 0.8) -> dict:
    return {"marketplace": "US", "genre": "rock", "track_id": track, "track_name": f"T{track}",
            "action": action, "prior": 0.5, "up": 5.0, "down": 1.0, "votes": 6, "score": score}


def test_an_older_day_run_again_after_newer_ones_leaves_the_playlists_of_a_run_in_order(tmp_path):
    """Day A enters track 1; day B takes it out and enters 2. Running A again (a backfill) must not put 1
    back: its moves were decided against the playlists before A, and B's later move still stands."""
    store = SQLitePlaylistStore(path=str(tmp_path / "playlists.sqlite"))
    day_a = pl.DataFrame([_move(1, "enter")])
    day_b = pl.DataFrame([_move(1, "leave", 0.5), _move(2, "enter")])
    store.apply("p", "2026-11-22", day_a, NOW)
    store.apply("p", "2026-11-23", day_b, NOW + DAY)
    in_order = store.members("p")
    assert in_order.select("track_id", "since").rows() == [(2, "2026-11-23")]
    assert store.members("p", before="2026-11-23").select("track_id", "since").rows() == [(1, "2026-11-22")]
    assert store.members("p", before="2026-11-22").is_empty()

    store.apply("p", "2026-11-22", day_a, NOW + 5 * DAY)  # the backfill
    assert store.members("p").equals(in_order)
    assert store.audit("p").select("run_date", "track_id", "action").rows() == [
        ("2026-11-22", 1, "enter"), ("2026-11-23", 1, "leave"), ("2026-11-23", 2, "enter")]  # in day order

    out_of_order = SQLitePlaylistStore(path=str(tmp_path / "other.sqlite"))
    out_of_order.apply("p", "2026-11-23", day_b, NOW)
    out_of_order.apply("p", "2026-11-22", day_a, NOW)
    assert out_of_order.members("p").equals(in_order)


def test_a_day_is_scored_as_of_its_schedule_not_the_wall_clock():
    from datetime import date, datetime, timezone
    from music_feedback.playlists.scoring import scored_as_of
    assert scored_as_of(date(2026, 11, 23)) == datetime(2026, 11, 24, 18, tzinfo=timezone.utc).timestamp()
