"""The combined score: a weighted geometric mean of the two model probabilities.

score = propensity ** w * affinity ** (1 - w), w = scoring.propensityWeight (default 0.5).
Both inputs are probabilities, so the score is in [0, 1]; it is high only when the listener is likely
both to answer and to like the track, and either model near zero pulls it down.
"""
from __future__ import annotations

import polars as pl

SCORE_BANDS = (("high", 0.7, 1.0), ("medium", 0.4, 0.7), ("low", 0.0, 0.4))


def combined_score(propensity: pl.Expr, affinity: pl.Expr, propensity_weight: float) -> pl.Expr:
    return (propensity.pow(propensity_weight) * affinity.pow(1.0 - propensity_weight)).clip(0.0, 1.0)


def score_distribution(scores: pl.Series) -> dict[str, float]:
    """Share of candidates per band: high >= 0.7, medium 0.4-0.7, low < 0.4."""
    n = max(scores.len(), 1)
    return {
        "high": round(int((scores >= 0.7).sum()) / n, 4),
        "medium": round(int(((scores >= 0.4) & (scores < 0.7)).sum()) / n, 4),
        "low": round(int((scores < 0.4).sum()) / n, 4),
    }
