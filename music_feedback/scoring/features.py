"""Feature hydration: listener and track features from the warehouse, and the model feature frame."""
from __future__ import annotations

from datetime import date

import polars as pl

from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse

LISTENER_FEATURES = ("engagement_score", "feedback_history", "music_taste_profile", "listening_frequency")
TRACK_FEATURES = ("genre", "artist_popularity", "release_date", "similar_track_ratings")
CATEGORICAL = ("genre",)
RATING_PRIOR = 2.0  # pseudo-answers at the global like rate, so a new artist is not 0% or 100%


def listener_features(wh: Warehouse, program_id: str, batch_date: date, listener_ids: pl.Series) -> pl.DataFrame:
    """One row per listener; music_taste_profile is a list of {genre, weight}."""
    ids = listener_ids.unique().to_frame("listener_id")
    base = q.listener_context(wh, ["listener_id", "engagement_score", "listening_frequency"])
    taste = (q.genre_affinity(wh).join(ids, on="listener_id", how="semi")
             .group_by("listener_id").agg(pl.struct("genre", "weight").alias("music_taste_profile")))
    counts = q.feedback_counts(wh, program_id, batch_date)
    return (
        ids.join(base, on="listener_id", how="left")
        .join(counts, on="listener_id", how="left")
        .join(taste, on="listener_id", how="left")
        .with_columns(pl.col("feedback_history").fill_null(0).cast(pl.Float64))
        .sort("listener_id")
    )


def track_features(wh: Warehouse, program_id: str, batch_date: date, track_ids: pl.Series) -> pl.DataFrame:
    """One row per track; similar_track_ratings is the smoothed like rate of the artist's answers."""
    ids = track_ids.unique().to_frame("track_id")
    ratings = q.artist_ratings(wh, program_id, batch_date)
    total = ratings.select(pl.col("likes").sum() / pl.col("answers").sum()).item() if ratings.height else 0.5
    total = 0.5 if total is None else total
    ratings = ratings.with_columns(
        ((pl.col("likes") + RATING_PRIOR * total) / (pl.col("answers") + RATING_PRIOR)).alias("similar_track_ratings"))
    return (
        ids.join(q.track_context(wh, ["track_id", "genre", "artist_id", "artist_popularity", "release_date"]),
                 on="track_id", how="left")
        .join(ratings.select("artist_id", "similar_track_ratings"), on="artist_id", how="left")
        .with_columns(pl.col("similar_track_ratings").fill_null(total))
        .sort("track_id")
    )


def candidate_features(candidates: pl.DataFrame, listeners: pl.DataFrame, tracks: pl.DataFrame,
                       batch_date: date) -> pl.DataFrame:
    """The candidates with every model feature as a column, in the form the models were trained on.

    music_taste_profile becomes the listener's weight for the track's genre; release_date becomes
    days since release at the batch day (as in the outcome history, at request time).
    """
    taste = (
        candidates.select("listener_id", "track_id")
        .join(tracks.select("track_id", "genre"), on="track_id", how="left")
        .join(listeners.select("listener_id", "music_taste_profile").explode("music_taste_profile")
              .unnest("music_taste_profile").rename({"genre": "taste_genre"}), on="listener_id", how="left")
        .filter(pl.col("taste_genre") == pl.col("genre"))
        .select("listener_id", "track_id", pl.col("weight").alias("music_taste_profile"))
    )
    return (
        candidates
        .drop([c for c in ("genre", "engagement_score") if c in candidates.columns])
        .join(listeners.drop("music_taste_profile"), on="listener_id", how="left")
        .join(tracks.drop("artist_id"), on="track_id", how="left")
        .join(taste, on=["listener_id", "track_id"], how="left")
        .with_columns(
            pl.col("music_taste_profile").fill_null(0.0),
            (pl.lit(batch_date) - pl.col("release_date")).dt.total_days().cast(pl.Float64).alias("days_since_release"),
        )
    )
