"""playlist_scores and curated_playlists: the day's feedback turned into track scores, and the playlists
moved by them. `listener_feedback` stands for the answers the service collects (written outside Dagster)."""

import polars as pl
from dagster import (AssetExecutionContext, AssetIn, AssetSpec, MaterializeResult, MetadataValue, Output, asset)

from music_feedback.clock import Clock
from music_feedback.defs.common import OWNER, Stopwatch, frame_metadata, key, preview
from music_feedback.defs.partitions import batch_date
from music_feedback.feedback.port import FeedbackStore
from music_feedback.playlists.membership import changes
from music_feedback.playlists.scoring import SCORED_AT, scored_as_of, track_scores
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
                       f"{settings.prior_strength:g} votes at the genre's like rate), from the feedback "
                       f"submitted before {SCORED_AT:%H:%M} UTC the day after the partition, and decayed to "
                       "then: a backfill of a day scores what its first run scored.")
    def playlist_scores(context: AssetExecutionContext, feedback_store: FeedbackStore):
        watch, as_of = Stopwatch(), scored_as_of(batch_date(context))
        answers = feedback_store.answers(program.program_id, as_of)
        scores = track_scores(answers, as_of, settings)
        if scores.is_empty():
            context.log.warning("no feedback yet: every playlist stays as it is")
        return Output(scores, metadata={
            **frame_metadata(scores, watch.total), "answers": answers.height, "as_of": MetadataValue.timestamp(as_of),
            "tracks_scored": scores["track_id"].n_unique() if scores.height else 0})

    @asset(key=key(program, "curated_playlists"), group_name=program.slug, owners=[OWNER], kinds={"sqlite"},
           partitions_def=partitions, ins={"scores": AssetIn(key(program, "playlist_scores"))},
           description=f"The curated playlists per genre and marketplace: a track enters at score >= "
                       f"{settings.enter_score} and leaves below {settings.leave_score}, either only with at least "
                       f"{settings.min_votes} votes; every move gets an audit row (prior, counts, score, action). "
                       "A day's moves are decided against the playlists as the days before it left them, and "
                       "re-running a day replaces its moves.")
    def curated_playlists(context: AssetExecutionContext, playlist_store: PlaylistStore,
                          scores: pl.DataFrame) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        # not today's members: a re-run of an older day would compare with moves made after it
        moves = changes(scores, playlist_store.members(program.program_id, before=day), settings)
        playlist_store.apply(program.program_id, day, moves, Clock.from_env().now())  # `at`: when applied
        members = playlist_store.members(program.program_id)
        return MaterializeResult(metadata={
            "entered": int((moves["action"] == "enter").sum()), "left": int((moves["action"] == "leave").sum()),
            "members": members.height, "playlists": members.select("marketplace", "genre").n_unique() if members.height else 0,
            "moves": preview(moves, ["marketplace", "genre", "track_name", "action", "votes", "score"])
            if moves.height else MetadataValue.md("no moves"), "duration_s": round(watch.total, 3)})

    return [playlist_scores, curated_playlists]

