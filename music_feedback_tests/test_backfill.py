"""A backfill gives what the first run gave: day 1 run again after day 2 scores its candidates with day 1's
features and champions, day 2 with its own (neither takes the other's cached scores), and day 1's playlists
move as they first did, although answers kept arriving after day 1's playlists were first scored."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from dagster import instance_for_test

from music_feedback import runner, settings
from music_feedback.definitions import build_definitions
from music_feedback.delivery.runner import run_email
from music_feedback.feedback import Submission
from music_feedback.programs.loader import load_programs
from music_feedback.resources import feedback_store, get_resources
from music_feedback_tools.simulate.day import run_job
from music_feedback_tests.conftest import BATCH_DAY

pytestmark = pytest.mark.graph

DAY1, DAY2 = BATCH_DAY - timedelta(days=1), BATCH_DAY
MOVE = ["run_date", "marketplace", "genre", "track_id", "track_name", "action", "prior", "up", "down",
        "votes", "score"]


def _at(day, hour: int) -> float:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc).timestamp()


def _asset(program, name: str, day) -> pl.DataFrame:
    return pl.read_parquet(settings.io_root() / program.slug / name / f"{day}.parquet")


def _answer(program, rows: pl.DataFrame, rating: int, at: float, tag: str) -> None:
    store = feedback_store()
    for lid, tid, channel in rows.select("listener_id", "track_id", "channel").iter_rows():
        store.submit(Submission(program.program_id, lid, tid, rating, channel, DAY1.isoformat(),
                                f"{tag}-{lid}-{tid}", at))


def _not_from_own_features(program, frame: pl.DataFrame, day) -> int:
    """Rows whose stored scores are not what the day's champions give for the row's own feature values."""
    resources = get_resources()
    wrong = np.zeros(frame.height, dtype=bool)
    for role in ("propensity", "affinity"):
        model = resources["model_registry"].champion_on(program.model(role).model_id, day)
        expected = resources["scorer"].predict(model, frame, program.scoring.batch_size)
        wrong |= np.abs(expected - frame[f"{role}_score"].to_numpy()) > 1e-12
    return int(wrong.sum())


def _day1_moves(program) -> pl.DataFrame:
    audit = get_resources()["playlist_store"].audit(program.program_id)
    day1 = audit.filter(pl.col("run_date") == DAY1.isoformat())
    return day1.select(MOVE).sort("marketplace", "genre", "track_id")


def test_day_one_run_again_after_day_two_gives_its_first_rows(data_home):
    program, defs = load_programs()[0], build_definitions()
    playlists = f"{program.slug}_playlists"
    with instance_for_test() as instance:
        runner.ensure_models(defs, program, instance, day=DAY2)
        assert runner.run_batch(defs, program, DAY1, instance).success
        first_scored = _asset(program, "scored_candidates", DAY1)
        assert runner.run_batch(defs, program, DAY2, instance).success
        day2 = _asset(program, "scored_candidates", DAY2)
        again = runner.run_batch(defs, program, DAY1, instance)  # the backfill of day 1's batch
        assert again.success
        rescored = _asset(program, "scored_candidates", DAY1)

        assert all(r["success"] for r in run_email(defs, program, DAY1, instance))
        # day 1's answers: the listeners of its most sent track (in one marketplace) of its most sent genre
        # like it, the same day
        sent = feedback_store().ledger_frame(program.program_id, DAY1.isoformat())
        sent = sent.filter(pl.col("state") == "sent")
        genre = sent.group_by("genre").len().sort("len", "genre", descending=[True, False])["genre"][0]
        in_genre = sent.filter(pl.col("genre") == genre)
        market, track, votes = in_genre.group_by("marketplace", "track_id").len().sort(
            "len", "marketplace", "track_id", descending=[True, False, False]).row(0)
        assert votes >= program.playlists.min_votes
        loved = in_genre.filter((pl.col("marketplace") == market) & (pl.col("track_id") == track))
        _answer(program, loved, 1, _at(DAY2, 12), "early")
        assert run_job(defs, playlists, DAY1.isoformat(), instance)["success"]
        first_scores, first_moves = _asset(program, "playlist_scores", DAY1), _day1_moves(program)
        assert first_moves.select("marketplace", "track_id", "action").rows() == [(market, track, "enter")]

        # the rest of the genre dislikes day 1's email after day 1's playlists were scored (D+1 18:00 UTC)
        late = in_genre.join(loved, on=["listener_id", "track_id"], how="anti")
        assert late.height >= 30
        _answer(program, late, -1, _at(DAY2 + timedelta(days=1), 12), "late")
        assert run_job(defs, playlists, DAY2.isoformat(), instance)["success"]
        members = get_resources()["playlist_store"].members(program.program_id)
        # the backfill of day 1's playlists
        assert run_job(defs, playlists, DAY1.isoformat(), instance)["success"]
        # and of day 1's batch once more, after its email went out and its answers came: the batch counts
        # contacts and answers as of its own decision time, so it keeps what it first kept
        assert runner.run_batch(defs, program, DAY1, instance).success
        after_sends = _asset(program, "scored_candidates", DAY1)

    # the test means something: a pair of day 1 is a candidate again on day 2 with other feature values
    both = first_scored.select("listener_id", "track_id", "features").join(
        day2.select("listener_id", "track_id", "features"), on=["listener_id", "track_id"])
    assert (both["features"] != both["features_right"]).sum() >= 1
    for frame, day in ((first_scored, DAY1), (day2, DAY2), (rescored, DAY1)):
        assert _not_from_own_features(program, frame, day) == 0, day
    assert rescored.equals(first_scored)  # every row, every score
    assert after_sends.equals(first_scored)
    assert again.meta("scored_candidates", "score_cache_hit_rate") == 1.0  # day 1's own cached scores
    assert _asset(program, "playlist_scores", DAY1).equals(first_scores)
    assert _day1_moves(program).equals(first_moves)
    assert get_resources()["playlist_store"].members(program.program_id).equals(members)
