"""Which tracks enter or leave a playlist: only with enough votes, and with a gap between the enter and
leave scores, so a track does not flap in and out on one vote."""
from __future__ import annotations

import polars as pl

from music_feedback.programs.model import PlaylistSettings


def changes(scores: pl.DataFrame, members: pl.DataFrame, settings: PlaylistSettings) -> pl.DataFrame:
    """Rows of AUDIT_COLUMNS: `enter` for a non-member with votes >= minVotes and score >= enterScore, `leave`
    for a member with votes >= minVotes and score < leaveScore."""
    keys = ["marketplace", "genre", "track_id"]
    current = members.select(*keys, pl.lit(True).alias("member"))
    ranked = scores.join(current, on=keys, how="left").with_columns(pl.col("member").fill_null(False))
    enough = pl.col("votes") >= settings.min_votes
    action = (pl.when(~pl.col("member") & enough & (pl.col("score") >= settings.enter_score)).then(pl.lit("enter"))
              .when(pl.col("member") & enough & (pl.col("score") < settings.leave_score)).then(pl.lit("leave")))
    return (ranked.with_columns(action.alias("action")).filter(pl.col("action").is_not_null())
            .select("marketplace", "genre", "track_id", "track_name", "action", "prior", "up", "down",
                    pl.col("votes").cast(pl.Int64), "score"))
