"""Feature hydration: listener and track features from the warehouse, and the model feature frame."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Iterator

import numpy as np
import polars as pl

from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse, date_literal

LISTENER_FEATURES = ("engagement_score", "feedback_history", "music_taste_profile", "listening_frequency")
TRACK_FEATURES = ("genre", "artist_popularity", "release_date", "similar_track_ratings")
CATEGORICAL = ("genre",)
RATING_PRIOR = 2.0  # pseudo-answers at the global like rate, so a new artist is not 0% or 100%


# A chunk's ids span at most this many times the chunk's rows: a range read of a few hundred bytes a listener
# (its context and three genre weights), so the seed's day (160K listeners over 800K ids) is one read.
SPAN_PER_ROW = 2


def id_chunks(ids: pl.Series, chunk_rows: int | None = None) -> list[pl.Series]:
    """The distinct ids, sorted, cut into runs of at most `chunk_rows` ids that each span at most
    SPAN_PER_ROW x `chunk_rows` id values, so a chunk's warehouse read (its id range) stays bounded however
    sparse the day's ids. None: one run. At least one run (an empty
    one for no ids), so the output still has its columns."""
    ids = ids.drop_nulls().unique().sort()
    if one_chunk(ids, chunk_rows):
        return [ids]
    values = ids.to_numpy()
    starts, i = [], 0
    while i < len(values):
        starts.append(i)
        # the first id past the span, within the next chunk_rows ids
        i = min(i + chunk_rows, int(np.searchsorted(values, values[i] + chunk_rows * SPAN_PER_ROW, side="left")))
    return [ids.slice(a, b - a) for a, b in zip(starts, starts[1:] + [len(values)])]


def one_chunk(ids: pl.Series, chunk_rows: int | None) -> bool:
    """True if id_chunks makes one chunk of these ids (distinct and sorted, or not)."""
    if chunk_rows is None or ids.len() <= 1:
        return True
    return ids.n_unique() <= chunk_rows and ids.max() - ids.min() < chunk_rows * SPAN_PER_ROW


def _range(column: str, ids: pl.Series) -> str:
    """A chunk's ids as a range predicate: portable, a few bytes of SQL whatever the chunk's size (an IN
    list of the 160K listeners of a default day took DuckDB 2.1 s to plan against 0.08 s for the whole
    table), and it prunes by the tables' sort or zone maps; the rows of the range not in the chunk are
    dropped by a semi-join after the read."""
    if not ids.len():
        return "1 = 0"
    return f"{column} BETWEEN {int(ids[0])} AND {int(ids[-1])}"


def _listener_chunk(wh: Warehouse, program_id: str, batch_date: date, ids: pl.Series) -> pl.DataFrame:
    cols = ["listener_id", "engagement_score", "listening_frequency"]
    frame = ids.to_frame("listener_id")
    where = _range("listener_id", ids)
    wh.require("listeners", cols)
    base = wh.fetch(f"SELECT {', '.join(cols)} FROM listeners WHERE {where}")
    wh.require("listener_genre_affinity", ["listener_id", "genre", "weight"])
    taste = (wh.fetch(f"SELECT listener_id, genre, weight FROM listener_genre_affinity WHERE {where}")
             .join(frame, on="listener_id", how="semi")
             .group_by("listener_id").agg(pl.struct("genre", "weight").alias("music_taste_profile")))
    start = batch_date - timedelta(days=q.FEEDBACK_HISTORY_DAYS - 1)
    wh.require("feedback_history", ["program_id", "listener_id", "submitted_at"])
    # q.feedback_counts with the chunk's range
    counts = wh.fetch(f"""
        SELECT listener_id, COUNT(*) AS feedback_history
        FROM feedback_history
        WHERE program_id = '{program_id}'
          AND submitted_at >= {date_literal(start)}
          AND submitted_at < {date_literal(batch_date + timedelta(days=1))}
          AND {where}
        GROUP BY listener_id""")
    return (
        frame.join(base, on="listener_id", how="left")
        .join(counts, on="listener_id", how="left")
        .join(taste, on="listener_id", how="left")
        .with_columns(pl.col("feedback_history").fill_null(0).cast(pl.Float64))
        .sort("listener_id")
    )


def listener_feature_chunks(wh: Warehouse, program_id: str, batch_date: date, listener_ids: pl.Series,
                            chunk_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """listener_features a chunk of listeners at a time (id_chunks), in listener order: each chunk reads only
    its id range of the listener tables."""
    for ids in id_chunks(listener_ids, chunk_rows):
        yield _listener_chunk(wh, program_id, batch_date, ids)


def listener_features(wh: Warehouse, program_id: str, batch_date: date, listener_ids: pl.Series,
                      chunk_rows: int | None = None) -> pl.DataFrame:
    """One row per listener; music_taste_profile is a list of {genre, weight}."""
    return pl.concat(listener_feature_chunks(wh, program_id, batch_date, listener_ids, chunk_rows))


def track_feature_chunks(wh: Warehouse, program_id: str, batch_date: date, track_ids: pl.Series,
                         chunk_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """track_features a chunk of tracks at a time, in track order; the artists' ratings (one row per
    artist) are read once."""
    ratings = q.artist_ratings(wh, program_id, batch_date)
    total = ratings.select(pl.col("likes").sum() / pl.col("answers").sum()).item() if ratings.height else 0.5
    total = 0.5 if total is None else total
    ratings = ratings.with_columns(
        ((pl.col("likes") + RATING_PRIOR * total) / (pl.col("answers") + RATING_PRIOR)).alias("similar_track_ratings"))
    cols = ["track_id", "genre", "artist_id", "artist_popularity", "release_date"]
    wh.require("tracks", cols)
    for ids in id_chunks(track_ids, chunk_rows):
        tracks = wh.fetch(f"SELECT {', '.join(cols)} FROM tracks WHERE {_range('track_id', ids)}")
        yield (
            ids.to_frame("track_id").join(tracks, on="track_id", how="left")
            .join(ratings.select("artist_id", "similar_track_ratings"), on="artist_id", how="left")
            .with_columns(pl.col("similar_track_ratings").fill_null(total))
            .sort("track_id")
        )


def track_features(wh: Warehouse, program_id: str, batch_date: date, track_ids: pl.Series,
                   chunk_rows: int | None = None) -> pl.DataFrame:
    """One row per track; similar_track_ratings is the smoothed like rate of the artist's answers."""
    return pl.concat(track_feature_chunks(wh, program_id, batch_date, track_ids, chunk_rows))


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
