"""Set aside extracted rows that are null or out of range, each with a reason code."""
from __future__ import annotations

import polars as pl

EXTRACT_COLUMNS = ("listener_id", "track_id", "play_count", "completion_rate", "engagement_score", "genre",
                   "artist_id", "track_release_date", "played_at")
REQUIRED = ("listener_id", "track_id", "play_count", "completion_rate", "engagement_score", "played_at",
            "track_release_date", "genre", "artist_id")


def _reason() -> pl.Expr:
    expr = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for col in REQUIRED:
        expr = expr.when(pl.col(col).is_null()).then(pl.lit(f"null_{col}"))
    return (
        expr.when(~pl.col("completion_rate").is_between(0.0, 1.0)).then(pl.lit("completion_rate_out_of_range"))
        .when(~pl.col("engagement_score").is_between(0.0, 1.0)).then(pl.lit("engagement_score_out_of_range"))
        .when(pl.col("play_count") < 1).then(pl.lit("play_count_out_of_range"))
        .when(pl.col("track_release_date") > pl.col("played_at").cast(pl.Date)).then(pl.lit("released_after_play"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def split_invalid(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, rejected rows with a `reason` column); no row is lost."""
    tagged = raw.with_columns(_reason().alias("reason"))
    valid = tagged.filter(pl.col("reason").is_null()).drop("reason")
    rejected = tagged.filter(pl.col("reason").is_not_null())
    return valid, rejected


def malformed_rows_query(table: str) -> str:
    """The day's rows a connector's WHERE would silently drop because a filtered field is null or the
    release date lies after the day (SQL's NULL comparisons are false), so they can be set aside with a
    reason. Portable SQL; :batch_start, :batch_end and :release_window_start are bound like the extract."""
    return f"""
        SELECT {', '.join(EXTRACT_COLUMNS)}
        FROM {table}
        WHERE played_at >= :batch_start AND played_at < :batch_end
          AND (track_release_date IS NULL
               OR track_release_date >= :batch_end
               OR (track_release_date >= :release_window_start
                   AND (completion_rate IS NULL OR play_count IS NULL)))"""
