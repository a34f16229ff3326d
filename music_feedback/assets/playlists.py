"""playlist_scores and curated_playlists: the day's feedback turned into track scores, and the playlists
moved by them. `listener_feedback` stands for the answers the service collects (written outside Dagster)."""

import time

import polars as pl
from dagster import (AssetExecutionContext, AssetIn, AssetSpec, MaterializeResult, MetadataValue, Output, asset)

from music_feedback.assets.common import OWNER, Stopwatch, batch_date, frame_metadata, key, preview
from music_feedback.feedback.port import FeedbackStore
from music_feedback.playlists.membership import changes
from music_feedback.playlists.scoring import track_scores
from music_feedback.playlists.store import PlaylistStore
from music_feedback.programs.model import Program


def feedback_spec(program: Program) -> AssetSpec:
    return AssetSpec(key(program, "listener_feedback"), group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
                     deps=[key(program, "email_deliveries")] if program.channel("email") else [],
                     description="Answers from the feedback page, the JSON API and the voice API, stored by the "
                                 "online service as they arrive (one per listener and track).")


def build_playlists(program: Program, partitions):
    settings = program.playlists

    @asset(key=key(program, "playlist_scores"), group_name=program.slug, owners=[OWNER], kinds={"polars"},
           partitions_def=partitions, deps=[key(program, "listener_feedback")],
           description=f"Every answered track's score per marketplace and genre ({settings.method}: one vote per "
                       f"listener, votes halved every {settings.half_life_days:g} days, a Beta prior of "
                       f"{settings.prior_strength:g} votes at the genre's like rate), from all feedback known "
                       "when the job runs.")
    def playlist_scores(context: AssetExecutionContext, feedback_store: FeedbackStore):
        watch, now = Stopwatch(), time.time()
        answers = feedback_store.answers(program.program_id, now + 1)
        scores = track_scores(answers, now, settings)
        if scores.is_empty():
            context.log.warning("no feedback yet: every playlist stays as it is")
        return Output(scores, metadata={**frame_metadata(scores, watch.total), "answers": answers.height,
                                        "tracks_scored": scores["track_id"].n_unique() if scores.height else 0})

    @asset(key=key(program, "curated_playlists"), group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
           partitions_def=partitions, ins={"scores": AssetIn(key(program, "playlist_scores"))},
           description=f"The curated playlists per genre and marketplace: a track enters at score >= "
                       f"{settings.enter_score} and leaves below {settings.leave_score}, either only with at least "
                       f"{settings.min_votes} votes; every move gets an audit row (prior, counts, score, action). "
                       "Re-running a day replaces that day's moves.")
    def curated_playlists(context: AssetExecutionContext, playlist_store: PlaylistStore,
                          scores: pl.DataFrame) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        # the day's earlier moves are undone first (a re-run), so compare with the members before them
        before = playlist_store.members(program.program_id)
        undone = playlist_store.audit(program.program_id)
        if undone.height:
            undone = undone.filter(pl.col("run_date") == day)
        moves = changes(scores, _before_day(before, undone), settings)
        playlist_store.apply(program.program_id, day, moves, time.time())
        members = playlist_store.members(program.program_id)
        return MaterializeResult(metadata={
            "entered": int((moves["action"] == "enter").sum()), "left": int((moves["action"] == "leave").sum()),
            "members": members.height, "playlists": members.select("marketplace", "genre").n_unique() if members.height else 0,
            "moves": preview(moves, ["marketplace", "genre", "track_name", "action", "votes", "score"])
            if moves.height else MetadataValue.md("no moves"), "duration_s": round(watch.total, 3)})

    return [playlist_scores, curated_playlists]


def _before_day(members: pl.DataFrame, day_audit: pl.DataFrame) -> pl.DataFrame:
    """The members as they were before the day's earlier moves (entries removed, exits restored)."""
    if day_audit.is_empty():
        return members
    entered = day_audit.filter(pl.col("action") == "enter").select("marketplace", "genre", "track_id")
    left = day_audit.filter(pl.col("action") == "leave").select(
        "marketplace", "genre", "track_id", "track_name", "score", pl.lit("").alias("since"))
    return pl.concat([members.join(entered, on=["marketplace", "genre", "track_id"], how="anti"), left],
                     how="vertical_relaxed")
