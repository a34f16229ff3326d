"""Raw plays -> the unified candidate model: one row per listener+track, with context and event metadata."""
from __future__ import annotations

from datetime import date

import polars as pl

EVENT_TYPE = "track_completed"


def unify(plays: pl.DataFrame | pl.LazyFrame, listeners: pl.DataFrame, tracks: pl.DataFrame, program_id: str,
          batch_date: date, connector_id: str) -> pl.DataFrame:
    """Deduplicate by listener+track and add marketplace, genre and event metadata.

    Listeners or tracks the warehouse does not know keep null context; the trust filter removes them.
    """
    # A stable sort by the keys, then a group-by that keeps that order: `first` is still the day's first
    # play, and the result comes out sorted; about half the time of hashing 2.1M rows and sorting after.
    # Given a scan, the plays are in memory only until they are grouped.
    grouped = plays.lazy().sort("listener_id", "track_id", maintain_order=True).group_by(
        "listener_id", "track_id", maintain_order=True).agg(
        pl.col("play_count").sum().alias("play_count"),
        pl.len().alias("session_count"),
        pl.col("completion_rate").max(),
        pl.col("engagement_score").max(),
        pl.col("played_at").min().alias("first_played_at"),
        pl.col("played_at").max().alias("last_played_at"),
        pl.col("genre").first(),
        pl.col("artist_id").first(),
        pl.col("track_release_date").first(),
    ).collect()
    listener_cols = listeners.select("listener_id", "marketplace", "time_zone", "voice_enabled")
    track_cols = tracks.select("track_id", "track_name")
    # A readable natural key: stable across library versions, unlike a hash.
    key = pl.concat_str([pl.lit(f"{program_id}:{batch_date.isoformat()}:"), pl.col("listener_id"),
                         pl.lit(":"), pl.col("track_id")])
    return (
        grouped.join(listener_cols, on="listener_id", how="left", maintain_order="left")
        .join(track_cols, on="track_id", how="left", maintain_order="left")
        .with_columns(
            pl.lit(program_id).alias("program_id"),
            pl.lit(batch_date).alias("batch_date"),
            pl.lit(EVENT_TYPE).alias("event_type"),
            pl.lit(connector_id).alias("source_connector"),
            key.alias("event_id"),
        )
    )
