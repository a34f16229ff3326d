"""The combined score: a weighted geometric mean of the two model probabilities.

score = propensity ** w * affinity ** (1 - w), w = scoring.propensityWeight (default 0.5).
Both inputs are probabilities, so the score is in [0, 1]; it is high only when the listener is likely
both to answer and to like the track, and either model near zero pulls it down.
"""
from __future__ import annotations

import polars as pl

from music_feedback.programs.model import ScoreBands


def combined_score(propensity: pl.Expr, affinity: pl.Expr, propensity_weight: float) -> pl.Expr:
    return (propensity.pow(propensity_weight) * affinity.pow(1.0 - propensity_weight)).clip(0.0, 1.0)


def band_labels(bands: ScoreBands) -> dict[str, str]:
    """Each band with its edges, as the batch's printout and the daily report both name them."""
    return {"high": f"high (>= {bands.high:.2f})", "medium": f"medium ({bands.medium:.2f} to {bands.high:.2f})",
            "low": f"low (< {bands.medium:.2f})"}


def band_counts(scores: pl.Series, bands: ScoreBands = ScoreBands()) -> dict[str, int]:
    """Candidates per band (high >= bands.high, medium from bands.medium, low below it); counts of chunks
    add up to the day's."""
    return {"high": int((scores >= bands.high).sum()),
            "medium": int(((scores >= bands.medium) & (scores < bands.high)).sum()),
            "low": int((scores < bands.medium).sum())}


def distribution_of(counts: dict[str, int], n: int) -> dict[str, float]:
    """band_counts as shares of `n` candidates."""
    n = max(n, 1)
    return {band: round(counts[band] / n, 4) for band in ("high", "medium", "low")}


def score_distribution(scores: pl.Series, bands: ScoreBands = ScoreBands()) -> dict[str, float]:
    """Share of candidates per band: high >= bands.high, medium from bands.medium, low below it. The batch's
    printout and the daily report both count with this, so they agree."""
    return distribution_of(band_counts(scores, bands), scores.len())
