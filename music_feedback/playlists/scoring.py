"""Track scores from feedback: one vote per listener per track, older votes decayed, shrunk towards the
genre's baseline (a Beta prior: the Bayesian average) or ranked by the Wilson lower bound."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone

import polars as pl

from music_feedback.programs.model import PlaylistSettings

Z95 = 1.959964
SCORED_AT = time(18, 0)  # UTC, the day after the partition: when the playlists schedule runs it


def scored_as_of(day: date) -> float:
    """Epoch seconds at which day D's playlists are scored: D+1 18:00 UTC, its schedule's time. Every run of
    D, the first or a backfill weeks later, counts the answers submitted before it and decays them to it, so
    it moves the playlists as the first did; a run before then (the feedback sensor) counts what there is."""
    return datetime.combine(day + timedelta(days=1), SCORED_AT, tzinfo=timezone.utc).timestamp()


def track_scores(answers: pl.DataFrame, as_of: float, settings: PlaylistSettings) -> pl.DataFrame:
    """Per (marketplace, genre, track): votes, decayed up/down weights, the genre prior and the score."""
    if answers.is_empty():
        return pl.DataFrame(schema={"marketplace": pl.Utf8, "genre": pl.Utf8, "track_id": pl.Int64,
                                    "track_name": pl.Utf8, "votes": pl.UInt32, "up": pl.Float64, "down": pl.Float64,
                                    "prior": pl.Float64, "score": pl.Float64})
    weighted = answers.filter(pl.col("marketplace").is_not_null() & pl.col("genre").is_not_null()).with_columns(
        (0.5 ** (((as_of - pl.col("submitted_at")) / 86_400).clip(0) / settings.half_life_days)).alias("w"))
    baseline = weighted.group_by("genre").agg(
        ((pl.col("rating") > 0).cast(pl.Float64) * pl.col("w")).sum().alias("_up"), pl.col("w").sum().alias("_all"))
    overall = float((weighted["rating"] > 0).mean() or 0.5)
    k = settings.prior_strength
    per_track = (weighted.group_by("marketplace", "genre", "track_id").agg(
        pl.col("track_name").drop_nulls().first(), pl.len().alias("votes"),
        pl.when(pl.col("rating") > 0).then(pl.col("w")).otherwise(0.0).sum().alias("up"),
        pl.when(pl.col("rating") < 0).then(pl.col("w")).otherwise(0.0).sum().alias("down"))
        .join(baseline, on="genre", how="left")
        # the genre's decayed like rate, itself shrunk towards the overall rate when a genre has few votes
        .with_columns(((pl.col("_up") + overall * k) / (pl.col("_all") + k)).alias("prior")).drop("_up", "_all"))
    if settings.method == "bayesian":
        score = (pl.col("up") + pl.col("prior") * k) / (pl.col("up") + pl.col("down") + k)
    else:
        score = wilson_lower_bound(pl.col("up"), pl.col("up") + pl.col("down"))
    return per_track.with_columns(score.alias("score")).sort("marketplace", "genre", "score", "track_id",
                                                             descending=[False, False, True, False])


def wilson_lower_bound(up: pl.Expr, n: pl.Expr, z: float = Z95) -> pl.Expr:
    p = up / n
    centre = p + z * z / (2 * n)
    margin = z * ((p * (1 - p) + z * z / (4 * n)) / n).sqrt()
    return pl.when(n > 0).then((centre - margin) / (1 + z * z / n)).otherwise(0.0)


def wilson(up: float, n: float, z: float = Z95) -> float:
    """The same bound for one track (tests check the expression against it)."""
    if n <= 0:
        return 0.0
    p = up / n
    return (p + z * z / (2 * n) - z * math.sqrt((p * (1 - p) + z * z / (4 * n)) / n)) / (1 + z * z / n)
